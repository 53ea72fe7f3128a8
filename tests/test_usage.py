"""The usage dashboard's SQL aggregates against figures worked out by hand, on SQLite and PostgreSQL."""
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import update

from atri.messages import AnswerFacts, ChatOptions, Message, Usage
from atri.store.rows import MessageRow
from atri.usage import DateRange, UsageInputError, is_admin, model_rows, to_csv, usage_report

MARCH = DateRange(date(2026, 3, 1), date(2026, 3, 31))


def answer(store, owner, cid, model, when, ttft=None, total=None, prompt=0, completion=0, cost=None, error=None):
    question_id = store.append(owner, cid, Message("user", "问题"))
    facts = AnswerFacts(model=model, finish_reason=None if error else "stop", ttft_s=ttft, total_s=total,
                        usage=Usage(prompt, completion) if prompt or completion else None, error_kind=error)
    message = Message("assistant", "答", facts=facts, options=ChatOptions("dashscope", model))
    row_id = store.append(owner, cid, message)
    with store.engine.begin() as connection:
        connection.execute(update(MessageRow).where(MessageRow.id.in_([question_id, row_id])).values(created_at=when))
        connection.execute(update(MessageRow).where(MessageRow.id == row_id).values(
            cost=cost, currency="CNY" if cost is not None else None))


def day(n, hour=12):
    return datetime(2026, 3, n, hour, tzinfo=UTC)


@pytest.fixture
def filled(store):
    a = store.create_conversation("alice", "贵的对话")
    b = store.create_conversation("alice", "便宜的对话")
    for ttft, total in [(0.4, 4.0), (0.1, 1.0), (0.3, 3.0), (0.2, 2.0), (0.5, 5.0)]:
        answer(store, "alice", a, "qwen3-max", day(1), ttft, total, prompt=100, completion=50, cost=0.01)
    answer(store, "alice", b, "qwen-plus", day(2, 23), 1.0, 2.0, prompt=10, completion=5, cost=0.001)
    answer(store, "alice", b, "qwen-plus", day(2, 1), 2.0, 3.0, prompt=10, completion=5, cost=0.001)
    answer(store, "alice", b, "qwen-plus", day(2), error="rate_limit")
    answer(store, "alice", b, "qwen-plus", day(2), error="streaming")  # still being written: left out
    answer(store, "alice", b, "qwen-plus", datetime(2026, 2, 1, tzinfo=UTC), 9.0, 9.0, prompt=1000, cost=1.0)
    c = store.create_conversation("bob", "bob's")
    answer(store, "bob", c, "qwen3-max", day(3), 0.9, 9.0, prompt=1000, completion=1000, cost=0.5)
    return store


def test_a_visitor_sees_their_own_answers_added_up_by_model(filled):
    report = usage_report(filled, "alice", MARCH)
    assert report.answers == 8  # 5 + 3 qwen-plus (one failed); not the one being written, nor February's, nor bob's
    models = {m.model: m for m in report.by_model}
    big, small = models["qwen3-max"], models["qwen-plus"]
    assert (big.answers, big.prompt_tokens, big.completion_tokens, big.errors) == (5, 500, 250, 0)
    assert big.cost == pytest.approx(0.05) and big.currency == "CNY"
    assert (small.answers, small.prompt_tokens, small.errors) == (3, 20, 1)
    assert small.error_rate == pytest.approx(1 / 3)
    assert report.cost == {"CNY": pytest.approx(0.052)}
    assert [m.model for m in report.by_model] == ["qwen3-max", "qwen-plus"], "most expensive first"


def test_median_and_p95_are_nearest_rank_per_model(filled):
    models = {m.model: m for m in usage_report(filled, "alice", MARCH).by_model}
    # qwen3-max: 0.1 0.2 0.3 0.4 0.5 → median the 3rd, p95 the 5th; qwen-plus: 1.0 2.0 → the 1st and the 2nd
    assert (models["qwen3-max"].ttft_median, models["qwen3-max"].ttft_p95) == (0.3, 0.5)
    assert (models["qwen3-max"].total_median, models["qwen3-max"].total_p95) == (3.0, 5.0)
    assert (models["qwen-plus"].ttft_median, models["qwen-plus"].ttft_p95) == (1.0, 2.0)


def test_tokens_and_cost_per_day_in_utc(filled):
    rows = usage_report(filled, "alice", MARCH).by_day
    by_day = {(r["day"], r["model"], r["currency"]): r for r in rows}
    assert set(by_day) == {("2026-03-01", "qwen3-max", "CNY"), ("2026-03-02", "qwen-plus", "CNY"),
                           ("2026-03-02", "qwen-plus", None)}  # the failed answer has no cost, so no currency
    assert by_day[("2026-03-01", "qwen3-max", "CNY")]["prompt_tokens"] == 500
    assert by_day[("2026-03-02", "qwen-plus", "CNY")]["answers"] == 2  # 01:00 and 23:00 UTC are the same day
    assert by_day[("2026-03-02", "qwen-plus", "CNY")]["cost"] == pytest.approx(0.002)


def test_errors_by_kind_and_the_most_expensive_conversations(filled):
    report = usage_report(filled, "alice", MARCH)
    assert report.errors == [{"kind": "rate_limit", "answers": 1, "share": pytest.approx(1 / 8)}]
    assert [(c["title"], c["answers"], c["tokens"]) for c in report.conversations] == [
        ("贵的对话", 5, 750), ("便宜的对话", 2, 30)]
    assert report.conversations[0]["cost"] == pytest.approx(0.05)


def test_the_date_range_filters(filled):
    assert usage_report(filled, "alice", DateRange.of(date(2026, 3, 2), date(2026, 3, 2))).answers == 3
    everything = usage_report(filled, "alice")
    assert everything.answers == 9 and everything.cost["CNY"] == pytest.approx(1.052)
    with pytest.raises(UsageInputError) as refused:
        DateRange.of(date(2026, 3, 2), date(2026, 3, 1))
    assert refused.value.key == "usage_range_backwards"


def test_everyone_for_the_host_and_nothing_of_others_for_a_visitor(filled):
    everyone = usage_report(filled, None, MARCH)
    assert everyone.answers == 9 and {m.model: m.answers for m in everyone.by_model}["qwen3-max"] == 6
    assert everyone.conversations[0]["title"] == "bob's"
    assert usage_report(filled, "carol", MARCH).empty


def test_batch_runs_count_in_the_usage(store):
    store.save_batch_run("alice", "run1", kind="batch", title="t", status="done", provider="dashscope",
                         model="qwen-plus", rows=3, failed=1, prompt_tokens=30, completion_tokens=60, cost=0.2,
                         currency="CNY", data={"rows": []}, created_at=day(5))
    [runs] = usage_report(store, "alice", MARCH).batch_runs
    assert (runs["runs"], runs["rows"], runs["failed"], runs["prompt_tokens"]) == (1, 3, 1, 30)
    assert usage_report(store, "bob", MARCH).batch_runs == []


def test_the_admin_password_is_needed_and_must_be_set():
    assert is_admin({"ATRI_ADMIN_PASSWORD": "s3cret-猫"}, "s3cret-猫")
    assert not is_admin({"ATRI_ADMIN_PASSWORD": "s3cret-猫"}, "s3cret")
    assert not is_admin({}, "") and not is_admin({"ATRI_ADMIN_PASSWORD": ""}, "")


def test_the_csv_has_a_row_per_model(filled):
    text = to_csv(model_rows(usage_report(filled, "alice", MARCH))).decode("utf-8-sig").splitlines()
    assert text[0].startswith("model,answers,errors,error_rate") and len(text) == 3
    assert text[1].startswith("qwen3-max,5,0,0.0,500,250")


def test_deleting_a_chat_keeps_its_answers_in_the_accounts_and_erases_its_text(filled):
    from sqlalchemy import text

    before = usage_report(filled, "alice", MARCH)
    expensive = next(c for c in filled.list_conversations("alice") if c.title == "贵的对话")
    assert filled.delete("alice", expensive.id)
    assert [c.title for c in filled.list_conversations("alice")] == ["便宜的对话"]
    assert filled.conversation("alice", expensive.id) is None and filled.export("alice", expensive.id) is None
    after = usage_report(filled, "alice", MARCH)
    assert (after.answers, after.cost) == (before.answers, before.cost), "the Usage page did not change"
    assert [(c["title"], c["deleted"], c["answers"]) for c in after.conversations] == [
        ("", True, 5), ("便宜的对话", False, 2)], "the deleted chat is still counted, marked, without its title"
    assert filled.usage_totals("alice").cost == {"CNY": pytest.approx(0.05 + 0.002 + 1.0)}
    with filled.engine.connect() as connection:
        left = connection.execute(text("SELECT count(*) FROM messages WHERE conversation_id = :c AND content <> ''"),
                                  {"c": expensive.id}).scalar()
        title = connection.execute(text("SELECT title FROM conversations WHERE id = :c"), {"c": expensive.id}).scalar()
    assert (left, title) == (0, ""), "the text is gone for good"


def test_forgetting_a_visitor_leaves_only_anonymous_counts(filled):
    from sqlalchemy import text

    everyone = usage_report(filled, None, MARCH)
    assert filled.forget_owner("alice") == 2
    assert filled.list_conversations("alice") == [] and usage_report(filled, "alice", MARCH).answers == 0
    after = usage_report(filled, None, MARCH)
    assert (after.answers, after.cost) == (everyone.answers, everyone.cost), "the host's figures did not change"
    assert [c.title for c in filled.list_conversations("bob")] == ["bob's"], "another visitor is untouched"
    with filled.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM conversations WHERE owner = 'alice'")).scalar() == 0
        assert connection.execute(text("SELECT count(*) FROM messages WHERE content = '问题'")).scalar() == 1  # bob's
