"""Which providers are usable, with which keys and URLs, from a mapping of configuration values.

The mapping is built by the caller from the environment, `.env` and Streamlit secrets, so this
module stays pure and testable. Keys are held here and in the client only: never logged or shown.
"""
from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from dotenv import dotenv_values

from .local import cache_dir
from .metering import RequestMeter
from .providers import Provider, catalogue, embedded_provider


@dataclass(frozen=True)
class Connection:
    """Everything the client needs to reach one provider."""

    provider: Provider
    base_url: str
    api_key: str
    timeout_s: float = 120.0
    # The quotas its requests count against; not part of its identity (clients are shared across visitors).
    meter: RequestMeter | None = field(default=None, compare=False)
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request (a gateway's credentials, for the host's)

    def __repr__(self) -> str:  # keep the key and headers out of logs and tracebacks
        return f"Connection(provider={self.provider.id!r}, base_url={self.base_url!r})"


def split_credentials(url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A base URL without its `user:password@` part, and that part as the Authorization header HTTP clients
    would have made of it. Left in the URL, the SDK's HTTP client sends it before any API key: a visitor's
    own key would go out with the host's gateway credentials."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, ()
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    header = ("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    return urlunsplit(parts._replace(netloc=netloc)), (header,)


def _positive(values: Mapping[str, str], name: str) -> int | None:
    try:
        number = int(str(values.get(name) or "").replace("_", "").replace(",", ""))
    except ValueError:
        return None
    return number if number > 0 else None


@dataclass(frozen=True)
class QuotaLimits:
    requests_per_minute: int | None = None  # per visitor and per address, on any key
    tokens_per_day: int | None = None  # per visitor and per address, on the host's keys and the embedded model
    budget_tokens_per_day: int | None = None  # all visitors together, on the host's keys

    @classmethod
    def of(cls, values: Mapping[str, str]) -> QuotaLimits:
        return cls(_positive(values, "ATRI_QUOTA_REQUESTS_PER_MINUTE"), _positive(values, "ATRI_QUOTA_TOKENS_PER_DAY"),
                   _positive(values, "ATRI_BUDGET_TOKENS_PER_DAY"))

    @property
    def any(self) -> bool:
        return any(limit is not None for limit in (self.requests_per_minute, self.tokens_per_day,
                                                    self.budget_tokens_per_day))


SHARE_LINKS = ("off", "gated", "public")


def _choice(value: str | None, allowed: tuple[str, ...], default: str) -> str:
    chosen = (value or "").strip().lower()
    return chosen if chosen in allowed else default


@dataclass(frozen=True)
class AppConfig:
    """The host's configuration, typed, from the same values (names in .env.example)."""

    cache_dir: Path  # where the embedded model is assembled
    local_model: str  # another GGUF instead of the bundled one
    prices_file: str
    secret_key: str = field(repr=False)
    database_url: str = field(repr=False)  # may hold a password
    data_dir: str
    timeout_s: float
    local_threads: int | None = None  # the embedded model's generation threads; None: all cores
    access_password: str = field(default="", repr=False)  # a shared demo's gate; empty: open
    trusted_proxies: str = ""  # addresses/networks whose X-Forwarded-For is believed
    mcp_config: str = ""  # the host's MCP servers file (Claude Desktop's mcpServers)
    searxng_url: str = ""  # a search API for the web_search tool
    share_links: str = "gated"  # "off": no sharing; "gated": links open past the access gate; "public": for anyone
    quotas: QuotaLimits = QuotaLimits()
    batch_poll_s: float = 30.0  # how often a batch sent to a provider's Batch API is asked about

    @classmethod
    def of(cls, values: Mapping[str, str]) -> AppConfig:
        try:
            timeout_s = max(1.0, float(values.get("ATRI_TIMEOUT_S") or 120))
        except ValueError:
            timeout_s = 120.0
        try:
            local_threads = int(values.get("ATRI_LOCAL_THREADS") or 0)
        except ValueError:
            local_threads = 0
        try:
            batch_poll_s = max(0.1, float(values.get("ATRI_BATCH_POLL_S") or 30))
        except ValueError:
            batch_poll_s = 30.0
        return cls(cache_dir=cache_dir(values.get("ATRI_CACHE_DIR", "")), local_model=values.get("ATRI_LOCAL_MODEL", ""),
                   prices_file=values.get("ATRI_PRICES_FILE", ""), secret_key=values.get("ATRI_SECRET_KEY", ""),
                   database_url=values.get("ATRI_DATABASE_URL", ""), data_dir=values.get("ATRI_DATA_DIR", ""),
                   timeout_s=timeout_s, local_threads=local_threads if local_threads > 0 else None,
                   access_password=values.get("ATRI_ACCESS_PASSWORD", ""),
                   trusted_proxies=values.get("ATRI_TRUSTED_PROXIES", ""), quotas=QuotaLimits.of(values),
                   mcp_config=(values.get("ATRI_MCP_CONFIG") or "").strip(),
                   searxng_url=(values.get("ATRI_SEARXNG_URL") or "").strip(),
                   share_links=_choice(values.get("ATRI_SHARE_LINKS"), SHARE_LINKS, "gated"), batch_poll_s=batch_poll_s)


@dataclass(frozen=True)
class Settings:
    values: Mapping[str, str]

    @property
    def config(self) -> AppConfig:
        return AppConfig.of(self.values)

    def key_for(self, provider: Provider) -> str | None:
        for name in provider.key_env:
            if self.values.get(name):
                return self.values[name]
        return None

    def base_url_for(self, provider: Provider) -> str:
        if provider.base_url_env and self.values.get(provider.base_url_env):
            return self.values[provider.base_url_env].rstrip("/")
        return provider.base_url

    def default_model_for(self, provider: Provider) -> str:
        if provider.model_env and self.values.get(provider.model_env):
            return self.values[provider.model_env]
        return provider.default_model

    def has_base_url(self, provider: Provider) -> bool:
        return bool(provider.base_url_env and self.values.get(provider.base_url_env))

    def is_offered(self, provider: Provider) -> bool:
        """Whether visitors may pick it: a server of the host's own only once the host named it."""
        return not provider.needs_base_url or self.has_base_url(provider)

    def offered_providers(self) -> dict[str, Provider]:
        return {pid: provider for pid, provider in catalogue().items() if self.is_offered(provider)}

    def is_configured(self, provider: Provider) -> bool:
        """Ready without a visitor's key: its base URL set (own servers) or its key set (cloud providers)."""
        return self.has_base_url(provider) if provider.needs_base_url else bool(self.key_for(provider))

    def default_provider_id(self) -> str:
        """The first configured provider by the catalogue's default_rank; the embedded model otherwise."""
        ranked = sorted((p for p in catalogue().values() if p.default_rank is not None), key=lambda p: p.default_rank)
        return next((p.id for p in ranked if self.is_configured(p)), embedded_provider().id)

    def connection(self, provider: Provider, visitor_key: str | None = None) -> Connection | None:
        """None when the provider is not offered here, or needs a key and has none."""
        if not self.is_offered(provider):
            return None
        key = visitor_key or self.key_for(provider)
        if not key and not provider.key_optional:
            return None
        base_url, credentials = split_credentials(self.base_url_for(provider))
        return Connection(provider, base_url, key or "not-needed", self.config.timeout_s,
                          headers=() if visitor_key else credentials)


@lru_cache(maxsize=4)
def _dotenv(path: Path, mtime_ns: int) -> dict[str, str]:
    """Read again only when the file changes (mtime_ns is part of the cache key)."""
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def gather_values(environ: Mapping[str, str], dotenv_path: Path | None,
                  secrets: Mapping[str, object] | None) -> dict[str, str]:
    """Secrets < .env < environment: the most explicit source wins."""
    values: dict[str, str] = {}
    for name, value in (secrets or {}).items():
        if isinstance(value, (str, int, float)):
            values[name] = str(value)
    if dotenv_path is not None and dotenv_path.is_file():
        values.update(_dotenv(dotenv_path, dotenv_path.stat().st_mtime_ns))
    values.update(environ)
    return values
