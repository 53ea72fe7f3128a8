"""The shape of the package, checked: no import circles (type-only and deferred imports counted), storage that
does not load the call pipeline, and modules small enough to read."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "atri"
STORAGE_MODULE = "atri.store"  # a package, one module per resource
MAX_MODULE_LINES = 500

ImportGraph = dict[str, set[str]]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.Module, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """The package's modules that `name` imports anywhere in its text: at the top, under `if TYPE_CHECKING`, or
    inside a function. An import that only a type checker or a later call runs still ties the two modules."""

    def known(dotted: str) -> str | None:  # the module a dotted name lives in: `atri.x.Name` -> `atri.x`
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    own_package = name if is_package else name.rpartition(".")[0]
    found: set[str | None] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {known(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = own_package.split(".")[:len(own_package.split(".")) - node.level + 1] if node.level else []
            source = ".".join(base + ([node.module] if node.module else []))
            found |= {known(f"{source}.{alias.name}") for alias in node.names}  # `from pkg import module` too
    return {module for module in found if module is not None and module != name}


def import_graph(root: Path, package: str) -> ImportGraph:
    paths = {module_name(path, root): path for path in sorted((root / package).rglob("*.py"))}
    return {name: imported_modules(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py",
                                   set(paths))
            for name, path in paths.items()}


def import_circles(graph: ImportGraph) -> list[list[str]]:
    """One circle through each group of modules that reach each other, as `[a, b, …, a]`."""
    circles, settled = [], set()
    for start in sorted(graph):
        if start in settled:
            continue
        path = _way_back(graph, start)
        if path is None:
            settled.add(start)
            continue
        circles.append(path)
        settled |= set(path) | {m for m in graph if _reaches(graph, start, m) and _reaches(graph, m, start)}
    return circles


def _way_back(graph: ImportGraph, start: str) -> list[str] | None:
    """A shortest import path from `start` back to itself (breadth first), or None."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for imported in sorted(graph[module]):
                if imported == start:
                    path = [module]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if imported not in came_from:
                    came_from[imported] = module
                    following.append(imported)
        frontier = following
    return None


def _reaches(graph: ImportGraph, source: str, target: str) -> bool:
    seen, todo = {source}, [source]
    while todo:
        for imported in graph[todo.pop()]:
            if imported == target:
                return True
            if imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return False


def test_atri_has_no_import_circle():
    graph = import_graph(ROOT, "atri")
    assert {"atri.settings", "atri.context.recall", "atri.ui.chat"} <= set(graph)
    assert "atri.quotas" in graph["atri.ui.access"]  # edges are seen
    circles = import_circles(graph)
    assert not circles, "import circles: " + "; ".join(" -> ".join(circle) for circle in circles)


def test_the_circle_check_sees_type_only_and_deferred_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .sub.b import B\n")
    (package / "sub" / "b.py").write_text("def f():\n    from ..c import C\n")
    (package / "c.py").write_text("from pkg import a\nimport os\n")
    (package / "d.py").write_text("from pkg.sub import b\n")  # into the circle, not part of it
    assert import_circles(import_graph(tmp_path, "pkg")) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]
    (package / "c.py").write_text("import os\n")
    assert import_circles(import_graph(tmp_path, "pkg")) == []


def test_importing_the_storage_does_not_import_the_openai_sdk():
    """Storage is plain data and SQL: a bench, a migration or a test of the store does not load the call
    pipeline (store -> context -> summaries -> turn -> client -> openai was the chain)."""
    code = (f"import sys, {STORAGE_MODULE}; "
            "print(' '.join(sorted(m for m in sys.modules if m == 'openai' or m.startswith('atri.'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    loaded = result.stdout.split()
    assert STORAGE_MODULE in loaded
    assert "openai" not in loaded, f"importing {STORAGE_MODULE} loaded openai; atri modules loaded: {loaded}"


def test_no_module_of_atri_is_over_500_lines():
    lengths = {path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
               for path in PACKAGE.rglob("*.py")}
    too_long = sorted(path for path, lines in lengths.items() if lines > MAX_MODULE_LINES)
    assert not too_long, f"over {MAX_MODULE_LINES} lines: {too_long}; split them by concern"
