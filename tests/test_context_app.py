"""Context strategies on the page: the sidebar choice, the meter, the context view, summaries, recall."""
import re
from dataclasses import replace

import pytest

from atri.providers import catalogue
from tests.conftest import new_app
from tests.test_app import send, settings_panel


@pytest.fixture
def small_window(monkeypatch):
    """qwen3-max with a 1,200-token window, so a short chat outgrows it."""
    providers = catalogue()
    dashscope = providers["dashscope"]
    models = tuple(replace(m, context_window=1_200, max_output=200) if m.id == "qwen3-max" else m for m in dashscope.models)
    monkeypatch.setitem(providers, "dashscope", replace(dashscope, models=models))


def context_expanders(at):
    return [e for e in at.expander if e.label.startswith("Context:")]


def test_the_meter_and_the_chat_totals(app):
    def meter() -> int:
        text = settings_panel(app).get("progress")[0].proto.text
        return int(re.search(r"≈ ([\d,]+) /", text).group(1).replace(",", ""))

    before = meter()
    send(app, "hello")
    send(app, "again")
    assert meter() > before, "the next request carries the two turns"
    per_answer = [c.value for c in app.caption if c.value.startswith("qwen3-max")]
    totals = next(c.value for c in app.caption if c.value.startswith("This chat:"))

    def figure(line: str, name: str) -> int:
        return int(re.search(rf"{name} ([\d,]+)", line).group(1).replace(",", ""))

    for name in ("in", "out"):
        assert figure(totals, name) == sum(figure(line, name) for line in per_answer)
    costs = [float(re.search(r"¥([\d.]+)", line).group(1)) for line in per_answer]
    assert float(re.search(r"¥([\d.]+)", totals).group(1)) == pytest.approx(sum(costs), abs=2e-4)


def test_each_answer_shows_what_was_sent(app):
    send(app, "我的猫叫小橘")
    view = context_expanders(app)[0]
    assert "2 messages sent, 0 left out" in view.label and "Full history" in view.label
    assert any("小橘" in md.value for md in view.markdown)


def test_last_n_turns_leaves_old_turns_out(app, dashscope_env):
    app.selectbox(key="ctx_strategy").set_value("last_n").run()
    app.slider(key="ctx_last_n").set_value(1).run()
    for text in ["first", "second", "third"]:
        send(app, text)
    sent = dashscope_env.streamed[-1]["messages"]
    assert [m["content"][:6] for m in sent if m["role"] == "user"] == ["second", "third"]
    assert "left out" in context_expanders(app)[-1].label and "2 left out" in context_expanders(app)[-1].label


def test_hidden_settings_keep_their_values(app):
    app.selectbox(key="ctx_strategy").set_value("last_n").run()
    app.slider(key="ctx_last_n").set_value(3).run()
    app.selectbox(key="ctx_strategy").set_value("full").run()
    app.selectbox(key="ctx_strategy").set_value("last_n").run()
    assert app.slider(key="ctx_last_n").value == 3


def test_the_strategy_is_kept_per_conversation(app):
    app.selectbox(key="ctx_strategy").set_value("recall").run()
    send(app, "hi")
    owner, cid = app.session_state["owner"], app.query_params["c"]
    app.button(key="new_chat").click().run()
    assert app.selectbox(key="ctx_strategy").value == "full"
    reopened = new_app(owner=owner, conversation=cid)
    assert reopened.selectbox(key="ctx_strategy").value == "recall"


def test_recall_memory_brings_back_the_planted_fact(app, dashscope_env):
    app.selectbox(key="ctx_strategy").set_value("recall").run()
    app.slider(key="ctx_last_n").set_value(1).run()
    app.slider(key="ctx_recall_k").set_value(1).run()
    for text in ["我的猫叫小橘,是一只橘猫。", "How do tides work?", "推荐一本历史书", "What is an index fund?"]:
        send(app, text)
    send(app, "我的猫叫什么名字?")
    system = dashscope_env.streamed[-1]["messages"][0]["content"]
    assert "小橘" in system, "the planted turn was recalled"
    assert "tides" not in system
    view = context_expanders(app)[-1]
    assert any("score" in md.value and "小橘" in md.value for md in view.markdown)


def test_rolling_summary_is_written_once_and_reused(app, dashscope_env, small_window):
    app.selectbox(key="ctx_strategy").set_value("summary").run()
    app.slider(key="ctx_last_n").set_value(2).run()
    app.slider(key="ctx_summary_share").set_value(0.5).run()
    for i in range(6):
        send(app, f"turn {i}: " + "tell me something about cats and their habits " * 6)
    summaries = [r for r in dashscope_env.streamed if r["messages"][0]["content"].startswith("Summarise")]
    assert summaries, "the history outgrew half the window, so a summary was asked for"
    assert all(r.get("enable_thinking") is False for r in summaries)
    last = dashscope_env.streamed[-1]
    assert "Summary of the earlier conversation" in last["messages"][0]["content"]
    assert "turn 0" not in " ".join(m["content"] for m in last["messages"][1:])
    answers = len([r for r in dashscope_env.streamed if not r["messages"][0]["content"].startswith("Summarise")])
    assert len(summaries) < answers, "a summary is stored and reused, not recomputed every turn"
    view = context_expanders(app)[-1]
    assert any(c.value.startswith("Summary (stands for the first") for c in view.caption)


def test_an_over_long_request_is_trimmed_before_sending(app, dashscope_env, small_window):
    for i in range(6):
        send(app, f"turn {i}: " + "a long message about many things " * 30)
    assert not app.error
    assert any("oldest turns were left out" in c.value for c in app.caption)
    sent = dashscope_env.streamed[-1]["messages"]
    assert "turn 0" not in " ".join(m["content"] for m in sent)
