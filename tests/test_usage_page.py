"""The Usage page through AppTest, over a database filled with answers of two visitors."""
from datetime import UTC, datetime, timedelta

import pytest
import streamlit as st
from sqlalchemy import update
from streamlit.testing.v1 import AppTest

from atri.messages import AnswerFacts, ChatOptions, Message, Usage
from atri.store import Store
from atri.store.rows import MessageRow
from tests.conftest import ROOT

PAGE = str(ROOT / "app_pages" / "4_Usage.py")
PASSWORD = "host-only-密码"


def answer(store, owner, cid, model, ttft, cost, error=None, days_ago=0):
    store.append(owner, cid, Message("user", "问题"))
    facts = AnswerFacts(model=model, finish_reason=None if error else "stop", ttft_s=ttft, total_s=ttft * 4,
                        usage=None if error else Usage(100, 40), error_kind=error)
    row_id = store.append(owner, cid, Message("assistant", "答", facts=facts, options=ChatOptions("dashscope", model)))
    with store.engine.begin() as connection:
        connection.execute(update(MessageRow).where(MessageRow.id == row_id).values(
            cost=cost, currency="CNY" if cost is not None else None,
            created_at=datetime.now(UTC) - timedelta(days=days_ago)))


@pytest.fixture
def filled(dashscope_env, database_url, monkeypatch):
    monkeypatch.setenv("ATRI_ADMIN_PASSWORD", PASSWORD)
    store = Store(database_url)
    mine = store.create_conversation("alice", "我的对话")
    for ttft in (0.2, 0.4, 0.6):
        answer(store, "alice", mine, "qwen3-max", ttft, 0.01)
    answer(store, "alice", mine, "qwen-plus", 1.0, None, error="rate_limit", days_ago=1)
    answer(store, "alice", mine, "qwen-plus", 1.0, 0.5, days_ago=60)  # outside the default 30 days
    theirs = store.create_conversation("bob", "bob 的秘密对话")
    answer(store, "bob", theirs, "qwen-flash", 0.1, 2.0)
    store.engine.dispose()
    return store


def usage_app(owner="alice"):
    st.cache_resource.clear()
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["owner"] = owner
    at.run()
    assert not at.exception, at.exception
    return at


def metrics(at):
    return {m.label: m.value for m in at.metric}


def test_a_visitor_sees_only_their_own_usage_in_the_last_30_days(filled):
    at = usage_app()
    assert metrics(at) == {"Answers": "4", "Tokens (in / out)": "300 / 120", "Cost": "¥0.0300", "Error rate": "25.0%"}
    models = at.dataframe[0].value
    assert list(models["model"]) == ["qwen3-max", "qwen-plus"]
    assert list(models["ttft_median_s"])[0] == 0.4 and list(models["ttft_p95_s"])[0] == 0.6
    assert list(at.dataframe[1].value["Kind"]) == ["rate_limit"]
    assert list(at.dataframe[2].value["Conversation"]) == ["我的对话"]
    assert len(at.get("vega_lite_chart")) == 3, "tokens per day, cost per day, times"
    assert not any("bob" in str(frame.value) for frame in at.dataframe)
    assert [b.label for b in at.get("download_button")] == ["Download CSV by model", "Download CSV by day"]


def test_the_date_range_filters_and_a_backwards_range_says_so(filled):
    at = usage_app()
    today = datetime.now(UTC).date()
    at.date_input(key="usage_range").set_value((today - timedelta(days=90), today)).run()
    assert metrics(at)["Answers"] == "5" and metrics(at)["Cost"] == "¥0.5300"
    at.date_input(key="usage_range").set_value((today - timedelta(days=1), today - timedelta(days=1))).run()
    assert metrics(at)["Answers"] == "1"
    at.date_input(key="usage_range").set_value((today - timedelta(days=300), today - timedelta(days=200))).run()
    assert at.info[0].value == "No saved answers in these dates."


def test_the_host_sees_everyone_with_the_admin_password_and_not_without(filled):
    at = usage_app("carol")
    assert at.info[0].value == "No saved answers in these dates."
    at.text_input(key="usage_password").set_value("guess")
    at.button[0].click().run()
    assert at.error[0].value == "That is not the password."
    assert at.caption[1].value == "Showing: your usage"
    at.text_input(key="usage_password").set_value(PASSWORD)
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert at.caption[1].value == "Showing: everyone's usage (admin)"
    assert metrics(at)["Answers"] == "5" and metrics(at)["Cost"] == "¥2.03"
    top = at.dataframe[2].value
    assert list(top["Conversation"]) == ["bob 的秘密对话", "我的对话"] and "Visitor" in top.columns
    assert PASSWORD not in repr(at.session_state), "the password is not kept in the session"


def test_without_an_admin_password_set_nobody_is_admin(filled, monkeypatch):
    monkeypatch.delenv("ATRI_ADMIN_PASSWORD")
    at = usage_app()
    assert any(c.value.startswith("The host has not set ATRI_ADMIN_PASSWORD") for c in at.caption)
    assert not at.text_input


def test_a_visitor_deletes_all_their_data_and_only_anonymous_counts_remain(filled):
    at = usage_app()
    button = at.button(key="forget_me")
    assert button.disabled, "asked for only once the visitor ticks that it cannot be undone"
    at.checkbox(key="forget_me_sure").check().run()
    at.button(key="forget_me").click().run()
    assert "Chats deleted: 1." in [s.value for s in at.success]
    assert filled.list_conversations("alice") == [] and filled.usage_totals("alice").answers == 0
    assert filled.list_conversations("bob")[0].title == "bob 的秘密对话", "another visitor's chat is untouched"
    assert sum(row["answers"] for row in filled.usage_report(None)["by_model"]) == 6, "the host's counts stay"


def test_after_a_price_change_the_chat_and_the_usage_page_still_agree(dashscope_env, database_url, monkeypatch,
                                                                        tmp_path):
    """An answer's cost is the one stored with it at the day's prices: neither view recomputes it with today's."""
    from tests.conftest import new_app
    from tests.test_app import send

    chat = new_app()
    send(chat, "how much does this cost?")
    totals = next(c.value for c in chat.caption if c.value.startswith("This chat:"))
    spent = totals.rsplit("≈ ", 1)[1]
    expensive = tmp_path / "prices.toml"
    expensive.write_text('[models."qwen3-max"]\ncurrency = "CNY"\ntiers = [{ up_to = 1000000, input = 600.0, output = 2400.0 }]\n')
    monkeypatch.setenv("ATRI_PRICES_FILE", str(expensive))
    st.cache_resource.clear()
    chat.run()
    assert next(c.value for c in chat.caption if c.value.startswith("This chat:")) == totals, "the chat's total stays"
    usage = AppTest.from_file(PAGE, default_timeout=60)
    usage.session_state["owner"] = chat.session_state["owner"]
    usage.run()
    assert metrics(usage)["Cost"] == spent, "the Usage page says the same"
