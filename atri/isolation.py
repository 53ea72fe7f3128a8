"""Heavy work on visitor input, in worker processes with CPU, memory and wall-clock limits.

Streamlit serves every visitor from one Python process, and the GIL makes one visitor's CPU-bound work
everyone's wait. Sizes are bounded before the work where they can be (each caller does that); this is
the backstop for what nobody foresaw: the work runs in a small pool of separate processes, each with an
address-space limit (`RLIMIT_AS`), a CPU-time limit per job (`RLIMIT_CPU`, raised by the job's allowance
before each job: the kernel ends the process when it is spent) and a wall-clock deadline kept here (the
worker is killed when it passes). A job past a limit costs one worker, which is replaced.

The workers are plain `python -m atri.isolation` processes speaking pickled messages over their pipes,
not `multiprocessing`: its children import the parent's `__main__`, which under Streamlit is the page
script. They run at a lower priority, with no provider keys in their environment.
"""
from __future__ import annotations

import atexit
import importlib
import os
import pickle
import queue
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

WORKERS = 2
CPU_S = 5.0  # CPU seconds one job may use
WALL_S = 10.0  # from the call to the answer, waiting for a free worker included
MEMORY_BYTES = 1024 * 1024 * 1024
NICENESS = 10
_LENGTH = struct.Struct("!Q")
_ROOT = Path(__file__).resolve().parents[1]
_KEPT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")


class Refusal(Exception):
    """Visitor input refused, before or during its work: `key` and `values` make the visitor's message.
    Comes back whole from a worker process (an exception pickles only its args by default)."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key, self.values = key, values

    def __reduce__(self) -> tuple[object, ...]:
        return _refusal, (type(self), self.key, self.values)


def _refusal(kind: type[Refusal], key: str, values: dict[str, object]) -> Refusal:
    return kind(key, **values)


class WorkTooHeavy(Exception):
    """A job went past a limit: `limit` is "time", "memory" or "busy" (no worker came free in time)."""

    def __init__(self, limit: str) -> None:
        super().__init__(f"the work went past its {limit} limit")
        self.limit = limit


@dataclass(frozen=True)
class Limits:
    cpu_s: float = CPU_S
    wall_s: float = WALL_S
    memory_bytes: int = MEMORY_BYTES


DEFAULT_LIMITS = Limits()


class _Worker:
    def __init__(self, memory_bytes: int) -> None:
        env = {name: os.environ[name] for name in _KEPT_ENV if name in os.environ}
        env |= {"PYTHONPATH": str(_ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}  # no thread pools
        self.process = subprocess.Popen(
            [sys.executable, "-m", "atri.isolation", str(memory_bytes)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env=env, cwd=_ROOT, close_fds=True)

    def send(self, message: object) -> None:
        data = pickle.dumps(message)
        assert self.process.stdin is not None
        self.process.stdin.write(_LENGTH.pack(len(data)) + data)
        self.process.stdin.flush()

    def receive(self, deadline: float) -> object:
        """The worker's answer; TimeoutError past the deadline, EOFError if the worker died."""
        header = self._read(_LENGTH.size, deadline)
        return pickle.loads(self._read(_LENGTH.unpack(header)[0], deadline))

    def _read(self, size: int, deadline: float) -> bytes:
        assert self.process.stdout is not None
        fd, data = self.process.stdout.fileno(), b""
        while len(data) < size:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            piece = os.read(fd, size - len(data))
            if not piece:
                raise EOFError
            data += piece
        return data

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def died_of_cpu_limit(self) -> bool:
        return self.process.wait() == -signal.SIGXCPU


class Pool:
    """Runs module-level functions in the worker processes; `run` blocks the calling thread only."""

    def __init__(self, workers: int = WORKERS, limits: Limits = DEFAULT_LIMITS) -> None:
        self.size, self.limits = workers, limits
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._started = 0
        self._lock = threading.Lock()
        self._all: set[_Worker] = set()

    def run(self, function: Callable[..., T], *args: Any, limits: Limits | None = None) -> T:
        """`function(*args)` in a worker; its exceptions come back as they are. Raises WorkTooHeavy."""
        limits = limits or self.limits
        deadline = time.monotonic() + limits.wall_s
        worker = self._take(deadline)
        try:
            worker.send((function.__module__, function.__qualname__, args, limits.cpu_s))
            kind, value = worker.receive(deadline)  # type: ignore[misc]
        except TimeoutError:
            self._replace(worker)
            raise WorkTooHeavy("time") from None
        except (EOFError, BrokenPipeError, pickle.UnpicklingError):
            self._replace(worker)
            raise WorkTooHeavy("time" if worker.died_of_cpu_limit() else "memory") from None
        if isinstance(value, MemoryError):
            self._replace(worker)  # what it holds now may be fragmented: start afresh
            raise WorkTooHeavy("memory")
        self._idle.put(worker)
        if kind == "error":
            raise value
        return value

    def _take(self, deadline: float) -> _Worker:
        with self._lock:
            if self._idle.empty() and self._started < self.size:
                self._start()
        try:
            return self._idle.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise WorkTooHeavy("busy") from None

    def _start(self) -> None:
        worker = _Worker(self.limits.memory_bytes)
        self._all.add(worker)
        self._started += 1
        self._idle.put(worker)

    def _replace(self, worker: _Worker) -> None:
        """Kill a worker and start another in its place (for a caller already waiting for one)."""
        worker.kill()
        with self._lock:
            if worker in self._all:
                self._all.discard(worker)
                self._started -= 1
                self._start()

    def close(self) -> None:
        with self._lock:
            for worker in self._all:
                worker.kill()
            self._all.clear()
            self._started = 0
            self._idle = queue.Queue()


_pool: Pool | None = None
_pool_lock = threading.Lock()


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    try:
        value = float(environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


def pool_from(environ: Mapping[str, str]) -> Pool:
    """A pool as the host set it: ATRI_WORKERS, ATRI_WORK_CPU_S, ATRI_WORK_WALL_S, ATRI_WORK_MEMORY_MB."""
    limits = Limits(cpu_s=_number(environ, "ATRI_WORK_CPU_S", CPU_S), wall_s=_number(environ, "ATRI_WORK_WALL_S", WALL_S),
                    memory_bytes=int(_number(environ, "ATRI_WORK_MEMORY_MB", MEMORY_BYTES / 2**20) * 2**20))
    return Pool(int(_number(environ, "ATRI_WORKERS", WORKERS)), limits)


def pool() -> Pool:
    """The process's pool, started on first use, with the host's limits from the environment."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = pool_from(os.environ)
            atexit.register(_pool.close)
        return _pool


def run_isolated(function: Callable[..., T], *args: Any, limits: Limits | None = None) -> T:
    """`function(*args)` in one of the process's workers (see Pool.run)."""
    return pool().run(function, *args, limits=limits)


# --- the worker's side ---------------------------------------------------------------------------------


def _limit_cpu(seconds: float) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime + seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))


def _serve(memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    os.nice(NICENESS)
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the replies
    while header := requests.read(_LENGTH.size):
        module, name, args, cpu_s = pickle.loads(requests.read(_LENGTH.unpack(header)[0]))
        _limit_cpu(cpu_s)
        try:
            function: Any = importlib.import_module(module)
            for part in name.split("."):
                function = getattr(function, part)
            reply: tuple[str, object] = ("ok", function(*args))
        except BaseException as error:  # noqa: BLE001 - every failure goes back to the caller
            reply = ("error", error)
        try:
            data = pickle.dumps(reply)
        except Exception as error:  # noqa: BLE001 - an exception that cannot be pickled
            data = pickle.dumps(("error", RuntimeError(f"{type(error).__name__}: {reply[1]!r}"[:2000])))
        replies.write(_LENGTH.pack(len(data)) + data)
        replies.flush()


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
