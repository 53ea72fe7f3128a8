from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_provider import GOOD_KEY, FakeProvider

ROOT = Path(__file__).resolve().parents[1]
# Every test starts from a clean configuration: no provider or Atri variable from the developer's shell, no
# `.env`, no secrets.toml (in-process pages and `streamlit run` alike). A test sets what it needs.
_CONFIGURING = re.compile(r"^(ATRI_|STREAMLIT_|DASHSCOPE_|ALIYUN_|OPENAI_|DEEPSEEK_|OLLAMA_)")
for _name in [name for name in os.environ if _CONFIGURING.match(name)]:
    del os.environ[_name]
_NO_SECRETS = str(Path(tempfile.gettempdir()) / "atri-tests-no-secrets" / "secrets.toml")
os.environ |= {"ATRI_ENV_FILE": "", "STREAMLIT_SECRETS_FILES": _NO_SECRETS}  # the latter for `streamlit run`


@pytest.fixture(autouse=True, scope="session")
def _no_secrets_in_process() -> None:
    """Pages run in-process (AppTest) read Streamlit's own option, not the variable."""
    from streamlit import config

    config.set_option("secrets.files", [_NO_SECRETS])
PROVIDER_ENV = ["DASHSCOPE_API_KEY", "ALIYUN_API_KEY", "DASHSCOPE_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL",
                "DEEPSEEK_API_KEY", "ATRI_CUSTOM_BASE_URL", "ATRI_CUSTOM_API_KEY", "ATRI_LOCAL_MODEL",
                "ATRI_DATABASE_URL", "ATRI_DATA_DIR"]


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeProvider]:
    server = FakeProvider().start()
    yield server
    server.stop()


@pytest.fixture
def fake(fake_server: FakeProvider) -> Iterator[FakeProvider]:
    fake_server.reset()
    yield fake_server
    fake_server.reset()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on loopback, for the whole test session."""
    from tests.postgres import pg_bin, postgres_server

    if pg_bin() is None:
        pytest.skip("PostgreSQL is not installed here (apt-get install postgresql); .ci/run installs it")
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """A store on each backend, empty of conversations."""
    from sqlalchemy import text

    from atri.store import Store

    if request.param == "sqlite":
        return Store(f"sqlite:///{tmp_path / 'atri.db'}")
    store = Store(request.getfixturevalue("pg_url"))
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM document_chunks"))
        connection.execute(text("DELETE FROM documents"))
        connection.execute(text("DELETE FROM messages"))
        connection.execute(text("DELETE FROM conversations"))
        connection.execute(text("DELETE FROM quota_counters"))
    return store


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'atri.db'}"


@pytest.fixture
def dashscope_env(fake: FakeProvider, database_url: str, monkeypatch: pytest.MonkeyPatch) -> FakeProvider:
    """The app configured for DashScope, pointed at the fake provider, with its own database."""
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DASHSCOPE_API_KEY", GOOD_KEY)
    monkeypatch.setenv("DASHSCOPE_BASE_URL", fake.base_url)
    monkeypatch.setenv("ATRI_DATABASE_URL", database_url)
    return fake


@pytest.fixture
def no_key_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider key, and an embedded model whose file is absent: only the offline model is offered,
    and it says at once why it cannot start."""
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATRI_DATABASE_URL", database_url)
    monkeypatch.setenv("ATRI_LOCAL_MODEL", str(tmp_path / "absent.gguf"))


def new_app(owner: str | None = None, conversation: str | None = None):
    """A fresh browser tab: new session state, optionally the same visitor and URL as before."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    if owner:
        at.session_state["owner"] = owner
    if conversation:
        at.query_params["c"] = conversation
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def app(dashscope_env: FakeProvider):
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    return new_app()


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV}


def _marks_for(item: pytest.Item) -> list[str]:
    """What a test needs beyond Python: a real browser, the embedded model, PostgreSQL, seconds to start."""
    module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
    params = getattr(item, "callspec", None)
    marks = []
    if "sync_playwright" in vars(item.module) or module.startswith("test_browser"):
        marks.append("browser")
    if module == "test_local":
        marks.append("local_model")
    if "pg_url" in item.fixturenames or (params is not None and "postgresql" in params.params.values()):
        marks.append("postgres")
    if module in SLOW_MODULES or "browser" in marks:
        marks.append("slow")
    return marks


SLOW_MODULES = {"test_deploy_nginx", "test_local"}  # they start servers and models


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for mark in _marks_for(item):
            item.add_marker(mark)
