"""A public demo offers only what its host set up (issue 14, item 9): no visitor can make the server
call a port on its own machine by picking Ollama or Custom."""
import pytest

from atri.messages import AnswerFacts, ChatOptions, Message
from atri.providers import catalogue
from atri.settings import Settings
from tests.conftest import new_app


@pytest.fixture(autouse=True)
def no_ollama_on_the_test_host(monkeypatch):
    """conftest clears the other providers' variables, not Ollama's: a developer's own must not leak in."""
    monkeypatch.delenv("OLLAMA_BASE_URL", raising=False)


def test_servers_of_the_hosts_own_are_offered_only_once_their_url_is_set():
    bare = Settings({})
    assert set(bare.offered_providers()) == {"dashscope", "openai", "deepseek", "local"}
    assert bare.connection(catalogue()["custom"]) is None and bare.connection(catalogue()["ollama"]) is None
    named = Settings({"OLLAMA_BASE_URL": "http://gpu-box:11434/v1", "ATRI_CUSTOM_BASE_URL": "http://vllm:8000/v1"})
    assert {"ollama", "custom"} <= set(named.offered_providers())
    assert named.connection(catalogue()["ollama"]).base_url == "http://gpu-box:11434/v1"
    assert named.is_configured(catalogue()["custom"]) and not bare.is_configured(catalogue()["custom"])


def provider_choices(at) -> list[str]:
    return at.selectbox(key="provider").options


def test_the_provider_list_has_no_unconfigured_local_servers(app):
    choices = " ".join(provider_choices(app))
    assert "Ollama" not in choices and "Custom" not in choices and "DashScope" in choices


def test_with_an_ollama_url_the_host_offers_ollama(dashscope_env, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("OLLAMA_BASE_URL", "http://127.0.0.1:1/v1")
    st.cache_resource.clear()
    assert any("Ollama" in choice for choice in provider_choices(new_app()))


def test_a_chat_whose_answer_named_an_unoffered_provider_reopens_on_the_default(app):
    from atri.ui.config import get_store

    store, owner = get_store(), app.session_state["owner"]
    cid = store.create_conversation(owner, "old")
    store.append(owner, cid, Message("user", "hi"))
    store.append(owner, cid, Message("assistant", "hello", facts=AnswerFacts(model="my-model", finish_reason="stop"),
                                     options=ChatOptions("custom", "my-model")))
    reopened = new_app(owner=owner, conversation=cid)
    assert reopened.selectbox(key="provider").value == "dashscope"



def test_a_session_that_names_custom_is_drawn_on_the_default_and_asks_the_default(dashscope_env):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["provider"] = "custom"  # what a stale or crafted session would carry
    at.run()
    at.chat_input[0].set_value("hi").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="provider").value == "dashscope"
    assert [r["messages"][-1]["content"] for r in dashscope_env.streamed] == ["hi"]
