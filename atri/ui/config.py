"""Settings and the process's services (atri.services), as the pages see them."""
from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path

import streamlit as st

from atri.answers import Answerer
from atri.i18n import language_for, t
from atri.local import LocalModelError, gguf_token_counter
from atri.pricing import Price, price_table
from atri.providers import embedded_provider, with_local_model
from atri.services import PROJECT_ROOT, Services, database_url
from atri.settings import Connection, Settings, gather_values
from atri.store import SchemaProblem, Store
from atri.tokens import TokenCounter
from atri.ui.session import LANG

log = logging.getLogger(__name__)


def _secrets() -> dict[str, object]:
    """Read again only when a secrets file changes: a page asks for the settings dozens of times a run
    (the prices under each answer), and copying st.secrets cost ~2 ms each time. The files are Streamlit's
    `secrets.files` (STREAMLIT_SECRETS_FILES: the tests point it at none)."""
    places = [Path(place) for place in st.get_option("secrets.files")]
    return _read_secrets(tuple(place.stat().st_mtime_ns if place.is_file() else None for place in places))


@lru_cache(maxsize=4)
def _read_secrets(_stamps: tuple[int | None, ...]) -> dict[str, object]:
    try:
        return dict(st.secrets)
    except Exception:  # no secrets.toml: Streamlit raises its own FileNotFoundError variants
        return {}


def dotenv_path() -> Path | None:
    """The project's `.env`, or the file ATRI_ENV_FILE names (empty: none, as in the tests)."""
    named = os.environ.get("ATRI_ENV_FILE")
    if named is None:
        return PROJECT_ROOT / ".env"
    return Path(named) if named else None


def load_settings() -> Settings:
    return Settings(gather_values(os.environ, dotenv_path(), _secrets()))


@st.cache_resource(show_spinner=False, on_release=Services.close)
def _services(url: str) -> Services:
    return Services(url)


def services() -> Services:
    """The process's services (atri.services): one set per database, shared by every session. Their store is
    made first (migrations run then): a database whose schema cannot be brought up to date stops the page with
    a message, and is tried again next run."""
    made = _services(database_url(load_settings().config))
    try:
        _ = made.store  # made first: no other service meets a database it cannot use
    except SchemaProblem as problem:
        log.error("the database cannot be used: %s", problem)
        st.error(t(current_language(), "database_schema_problem"), icon=":material/database:")
        st.stop()
    made.remote_batches(load_settings())  # its worker polls the batches sent to a Batch API, this replica's or not
    return made


def get_store() -> Store:
    """One engine (and connection pool) per process."""
    return services().store


def get_answerer() -> Answerer:
    """The process's answer workers: answers outlive the page runs (and the browsers) that asked for them."""
    return services().answerer


def current_language() -> str:
    if LANG not in st.session_state:
        st.session_state[LANG] = language_for(st.context.locale)
    return st.session_state[LANG]


def local_connection(settings: Settings, lang: str) -> tuple[Connection | None, TokenCounter | None]:
    """Start (once) and connect to the embedded model; on failure say why and how to go remote."""
    provider = embedded_provider()
    try:
        with st.spinner(t(lang, "local_starting")):
            engine = services().local_engine(settings.config.local_model, settings.config.cache_dir,
                                             settings.config.local_threads)
    except LocalModelError as error:
        st.error(t(lang, "local_failed", reason=str(error)))
        st.info(t(lang, "setup_hint"))
        return None, None
    if engine.model_id != provider.default_model:
        provider = with_local_model(provider, engine.model_id)
    return Connection(provider, engine.base_url, "not-needed"), gguf_token_counter(str(engine.model_path))



def price_for(model_id: str) -> Price | None:
    return price_table(load_settings().config.prices_file).get(model_id)
