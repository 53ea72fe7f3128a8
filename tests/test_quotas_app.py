"""Refusals before a question is saved, on the chat page (AppTest against the fake DashScope server)."""
import streamlit as st

from atri.store import Store
from tests.conftest import new_app
from tests.test_app import all_text, send


def _fresh(monkeypatch, **settings):
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    st.cache_resource.clear()
    return new_app()


def test_a_used_up_quota_refuses_the_next_question_before_saving_it(dashscope_env, database_url, monkeypatch):
    at = _fresh(monkeypatch, ATRI_QUOTA_REQUESTS_PER_MINUTE="1")
    send(at, "The one request of this minute")
    assert "1 of 1 requests this minute" in all_text(at)
    sent = len(dashscope_env.requests)
    send(at, "And one more")
    shown = all_text(at)
    assert "requests a minute and they are used up" in shown
    assert "And one more" in shown, "the text stays on the page, to copy"
    assert at.chat_input[0].value == "And one more", "and back in the chat box, to send again"
    assert len(dashscope_env.requests) == sent
    owner = at.session_state["owner"]
    cid = at.query_params["c"]
    cid = cid if isinstance(cid, str) else cid[0]
    assert [m.content for m in Store(database_url).messages(owner, cid) if m.role == "user"] == [
        "The one request of this minute"], "the refused question was not saved"


def test_a_message_longer_than_the_models_window_is_refused_with_its_size(dashscope_env, monkeypatch):
    at = _fresh(monkeypatch)
    at.text_input(key="custom_model::dashscope").set_value("qwen-tiny-test").run()  # a guessed 32K window
    send(at, "猫" * 40_000)
    shown = all_text(at)
    assert "more than qwen-tiny-test's whole context window (32,768 tokens)" in shown
    assert "40,000 tokens" in shown
    assert dashscope_env.streamed == []
