"""A visitor's JSON Schema, checked, and a model's answer read against it (the Extract page's).

Both are the visitor's to make heavy: a `$ref` loop that validation follows until Python's recursion
limit, `$defs` that double at each level, a pattern that backtracks for minutes. So a schema is refused
at input when its references loop or expand too far, patterns are matched by RE2 (linear time; what it
cannot run is refused), and both checks run in a worker process (atri.isolation) on the page.
"""
from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import json_repair
import re2
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import SchemaError, ValidationError

from .isolation import WorkTooHeavy, run_isolated
from .tables import BatchInputError

MAX_SCHEMA_CHARS = 50_000
MAX_EXPANDED_PARTS = 10_000  # a schema's parts once every $ref is followed: $defs can double at each level


class ExtractInputError(BatchInputError):
    """What to extract, or from what, cannot be used: `key` names the i18n message, `values` fill it."""


def parse_schema(text: str) -> dict[str, Any]:
    """A pasted JSON Schema, checked; raises ExtractInputError saying where and what is wrong."""
    if not text.strip():
        raise ExtractInputError("extract_fields_empty")
    if len(text) > MAX_SCHEMA_CHARS:
        raise ExtractInputError("extract_schema_too_big", limit=MAX_SCHEMA_CHARS)
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as error:
        raise ExtractInputError("extract_schema_not_json", line=error.lineno, column=error.colno, reason=error.msg) from None
    except RecursionError:
        raise ExtractInputError("extract_schema_invalid", reason="nested too deeply") from None
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise ExtractInputError("extract_schema_not_object")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        where = "/".join(str(p) for p in error.path) or "(top)"
        raise ExtractInputError("extract_schema_invalid", reason=f"{where}: {error.message[:200]}") from None
    _check_refs(schema)
    _check_patterns(schema)
    return schema


def parse_schema_isolated(text: str) -> dict[str, Any]:
    """`parse_schema` in a worker process (atri.isolation): a schema is the visitor's to make heavy."""
    try:
        return run_isolated(parse_schema, text)
    except WorkTooHeavy:
        raise ExtractInputError("extract_schema_too_big", limit=MAX_SCHEMA_CHARS) from None


def _pointed_at(schema: dict[str, Any], ref: str) -> Any:
    """What a local `$ref` ("#", "#/$defs/name") points to; refuses any other kind of reference."""
    if ref != "#" and not ref.startswith("#/"):
        raise ExtractInputError("extract_schema_invalid", reason="$ref may only point inside the schema (#/…)")
    node: Any = schema
    for part in ref[2:].split("/") if ref != "#" else []:
        key = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            raise ExtractInputError("extract_schema_invalid", reason=f"$ref {ref[:80]} points to nothing")
    return node


def _check_refs(schema: dict[str, Any]) -> None:
    """Follows every `$ref` as validation would: a loop (which validation would follow until Python's
    recursion limit, for every row) and a schema that grows too large once expanded are refused."""
    parts = 0

    def follow(node: Any, refs: tuple[str, ...]) -> None:
        nonlocal parts
        parts += 1
        if parts > MAX_EXPANDED_PARTS:
            raise ExtractInputError("extract_schema_too_big_expanded", limit=MAX_EXPANDED_PARTS)
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        ref = node.get("$ref") if isinstance(node, dict) else None
        if isinstance(ref, str):
            if ref in refs:
                loop = refs[refs.index(ref):] + (ref,)
                raise ExtractInputError("extract_schema_ref_loop", where=" → ".join(r[:60] for r in loop))
            follow(_pointed_at(schema, ref), refs + (ref,))
        for child in children:
            if child is not ref:
                follow(child, refs)

    follow(schema, ())


def _patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield node["pattern"]
        if isinstance(node.get("patternProperties"), dict):
            yield from node["patternProperties"]
        for child in node.values():
            yield from _patterns(child)
    elif isinstance(node, list):
        for child in node:
            yield from _patterns(child)


def _check_patterns(schema: dict[str, Any]) -> None:
    """Patterns are matched by RE2, in time linear in the text (Python's `re` backtracks: `^(a+)+$`
    against 28 a's and a "!" took 27 s); what RE2 cannot run (backreferences, lookaround) is refused."""
    for pattern in _patterns(schema):
        try:
            _regex(pattern)
        except re2.error as error:
            raise ExtractInputError("extract_schema_pattern", pattern=pattern[:80], reason=str(error)[:120]) from None


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re2._Regexp:
    return re2.compile(pattern)


def _matches(pattern: str, text: str) -> bool:
    return _regex(pattern).search(text) is not None


# jsonschema's own keywords, with RE2 in place of `re` where a pattern meets text
def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _matches(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any,
                        schema: dict[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "object"):
        for pattern, subschema in patterns.items():
            for key, value in instance.items():
                if _matches(pattern, key):
                    yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, allowed: Any, instance: Any,
                           schema: dict[str, Any]) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    known, patterns = schema.get("properties", {}), list(schema.get("patternProperties", {}))
    extras = [key for key in instance if key not in known and not any(_matches(p, key) for p in patterns)]
    if validator.is_type(allowed, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], allowed, path=extra)
    elif not allowed and extras:
        yield ValidationError(f"Additional properties are not allowed ({', '.join(repr(e) for e in sorted(extras))} "
                              f"{'was' if len(extras) == 1 else 'were'} unexpected)")


_Validator = validators.extend(Draft202012Validator, {
    "pattern": _pattern, "patternProperties": _pattern_properties, "additionalProperties": _additional_properties})
_FORMATS = FormatChecker()
_FORMATS.checks("regex", raises=re2.error)(lambda value: not isinstance(value, str) or bool(_regex(value)))


# --- reading an answer ----------------------------------------------------------------------------------


@dataclass
class Reading:
    data: dict[str, Any] | None
    repaired: bool = False
    parse_error: str | None = None
    errors: list[str] = field(default_factory=list)  # where and why it does not match the schema

    @property
    def valid(self) -> bool:
        return self.data is not None and not self.errors

    def badness(self) -> tuple[int, int]:
        return (self.data is None, len(self.errors))


_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n?(.*?)\n?```\s*$", re.S)


def read_answer(raw: str, schema: dict[str, Any]) -> Reading:
    """Parse, repair if it has to, validate. Never raises."""
    text = raw.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    repaired = bool(fenced)
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        parse_error = str(error)[:200]
        try:
            data = json_repair.loads(text)
        except Exception:  # noqa: BLE001 - a repair that fails is the same as none
            data = None
        if not isinstance(data, dict) or not data:
            return Reading(None, parse_error=parse_error or "not JSON")
        repaired = True
    if not isinstance(data, dict):
        return Reading(None, repaired, parse_error=f"a JSON {type(data).__name__}, not an object")
    validator = _Validator(schema, format_checker=_FORMATS)
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    messages = [f"{'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message[:200]}" for e in errors[:20]]
    return Reading(data, repaired, None, messages)


def read_answer_isolated(raw: str, schema: dict[str, Any]) -> Reading:
    """`read_answer` in a worker process: the schema is the visitor's and the answer the model's."""
    try:
        return run_isolated(read_answer, raw, schema)
    except WorkTooHeavy as error:
        return Reading(None, parse_error=f"checking this answer went past its {error.limit} limit and was stopped")
