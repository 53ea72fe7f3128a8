"""The process's services, built once from its settings: the store, the answer workers, the batch runner, the
password gate, the quotas, the MCP hub and the embedded model's engine.

The composition root. Each service is built the first time it is asked for (a service that fails to build,
such as a store whose schema cannot be brought up to date, is tried again at the next ask) and shared by every
visitor after that; `close` releases them all. The Streamlit pages keep one cached Services per database
(atri.ui.config); a bench, a test or a future HTTP API makes its own with `Services.for_settings` and gets the
same wiring. No Streamlit here.
"""
from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

from .answers import Answerer
from .batch import BatchRunner
from .batch_remote import RemoteBatches
from .gate import PasswordGate
from .local import LocalEngine, prepare_and_start
from .mcp_tools import McpConfigError, McpHub, load_config
from .pricing import price_table
from .providers import catalogue
from .quotas import Quotas
from .settings import AppConfig, QuotaLimits, Settings
from .store import Store

PROJECT_ROOT = Path(__file__).resolve().parents[1]

T = TypeVar("T")


def database_url(config: AppConfig) -> str:
    """ATRI_DATABASE_URL, or a SQLite file in the data directory (made if missing)."""
    if config.database_url:
        return config.database_url
    data_dir = Path(config.data_dir or PROJECT_ROOT / "data")
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / 'atri.db'}"


class Services:
    """One process's services on one database."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._guard = threading.Lock()
        self._locks: dict[Hashable, threading.Lock] = {}  # one per service: a slow one (the engine) holds up no other
        self._made: dict[Hashable, Any] = {}
        self._closers: dict[Hashable, Callable[[], None]] = {}  # in the order they were built

    @classmethod
    def for_settings(cls, settings: Settings) -> Services:
        return cls(database_url(settings.config))

    def _once(self, key: Hashable, build: Callable[[], T], close: Callable[[T], None] | None = None,
              usable: Callable[[T], bool] = lambda made: True) -> T:
        """The service under `key`, built now if it was not, or is no longer `usable`."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            made = self._made.get(key)
            if made is None or not usable(made):
                made = self._made[key] = build()
                if close is not None:
                    self._closers[key] = lambda: close(made)
            return cast(T, made)

    @property
    def store(self) -> Store:
        """Conversations and everything else kept; migrations run when it is first made (raises SchemaProblem)."""
        return self._once("store", lambda: Store(self.database_url), lambda store: store.engine.dispose())

    @property
    def answerer(self) -> Answerer:
        """The answer workers: answers outlive the page runs (and the browsers) that asked for them."""
        return self._once("answerer", lambda: Answerer(self.store), Answerer.close)

    @property
    def batch_runner(self) -> BatchRunner:
        return self._once("batch_runner", lambda: BatchRunner(self.store), BatchRunner.close)

    def remote_batches(self, settings: Settings) -> RemoteBatches:
        """The worker that polls the runs sent to a provider's Batch API (any replica's, on the host's key),
        from the first ask on: the batches a process left going are polled again once a page is opened."""

        def connect(provider_id: str):
            provider = catalogue().get(provider_id)
            return settings.connection(provider) if provider is not None else None

        return self._once("remote_batches", lambda: RemoteBatches(
            self.store, connect, lambda model_id: price_table(settings.config.prices_file).get(model_id),
            poll_every_s=settings.config.batch_poll_s), RemoteBatches.close)

    @property
    def password_gate(self) -> PasswordGate:
        return self._once("password_gate", lambda: PasswordGate(self.store))

    def quotas(self, limits: QuotaLimits) -> Quotas | None:
        """The quotas on this database under these limits; None when the host set no limit."""
        if not limits.any:
            return None
        return self._once(("quotas", limits), lambda: Quotas(self.store, limits))

    def mcp_hub(self, path: str, environ: Mapping[str, str]) -> McpHub | McpConfigError | None:
        """The host's MCP servers, started once per version of their config file (an edited file starts them
        again); the first ask waits for them to list their tools. `environ`: the settings a header's `${NAME}`
        is read from."""
        if not path:
            return None
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            mtime = 0
        return self._once(("mcp_hub", path, mtime), lambda: _start_hub(path, environ),
                          lambda hub: hub.close() if isinstance(hub, McpHub) else None)

    def local_engine(self, local_model: str, models_dir: Path, threads: int | None = None) -> LocalEngine:
        """One llama.cpp server for every visitor, started again if it died (raises LocalModelError)."""
        return self._once(("local_engine", local_model, models_dir, threads),
                          lambda: prepare_and_start(local_model, models_dir, threads), lambda engine: engine.stop(),
                          usable=lambda engine: engine.running)

    def close(self) -> None:
        """Release every service, the last built first (the workers before the store they write to)."""
        with self._guard:
            closers, self._closers, self._made = list(self._closers.values()), {}, {}
        for close in reversed(closers):
            close()


def _start_hub(path: str, environ: Mapping[str, str]) -> McpHub | McpConfigError:
    try:
        configs = load_config(path)
    except McpConfigError as error:  # kept, so that the page says why until the file changes
        return error
    hub = McpHub(configs, environ=dict(environ))
    atexit.register(hub.close)
    hub.wait_ready()
    return hub
