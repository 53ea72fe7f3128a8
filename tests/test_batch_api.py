"""DashScope's Batch API (issue 31): rows sent as a JSONL file through files/batches of the fake DashScope
server, polled by the server's worker, results matched back into the rows, at half the real-time price."""
import json
import time
from datetime import timedelta

import pytest

from atri.batch import DONE, EXPIRED, FAILED, STOPPED, load_run
from atri.batch_api import MAX_RESULT_LINE_BYTES, custom_id, jsonl_of, read_results, with_saving
from atri.batch_plan import Variant, batch_spec
from atri.batch_remote import RemoteBatches
from atri.calls import Target
from atri.pricing import batch_cost, price_table, request_cost
from atri.providers import catalogue
from atri.settings import Settings
from atri.store import Store
from atri.tables import BatchInputError
from tests.fake_provider import GOOD_KEY, Fault, error_body

DASHSCOPE = catalogue()["dashscope"]


def connection(fake):
    return Settings({"DASHSCOPE_API_KEY": GOOD_KEY, "DASHSCOPE_BASE_URL": fake.base_url}).connection(DASHSCOPE)


def target(fake, model="qwen-plus"):
    return Target(connection(fake), DASHSCOPE.model(model), price_table().get(model))


def spec(*texts, **variant):
    return batch_spec("dashscope", "qwen-plus", [(text, {"text": text}) for text in texts], Variant(**variant))


def remote(fake, store, start=False, every=0.05):
    """The process's poller; tests call poll_once themselves unless `start` (then its thread polls)."""
    return RemoteBatches(store, lambda provider_id: connection(fake), lambda model: price_table().get(model),
                         poll_every_s=every, start=start)


def poll_until_ended(batches, store, run_id, owner="alice", rounds=20):
    for _ in range(rounds):
        time.sleep(0.05)  # a claim lasts 80 % of poll_every_s
        batches.poll_once()
        view = load_run(store, owner, run_id)
        if view.finished:
            return view
    raise AssertionError(f"the batch did not end: {load_run(store, owner, run_id).remote}")


@pytest.fixture
def sqlite_store(database_url):
    return Store(database_url)


def test_the_file_holds_each_rows_real_time_request_without_streaming(fake):
    lines = [json.loads(line) for line in jsonl_of(spec("一", "二", temperature=0.3), target(fake)).splitlines()]
    assert [line["custom_id"] for line in lines] == ["row-1", "row-2"]
    assert {(line["method"], line["url"]) for line in lines} == {("POST", "/v1/chat/completions")}
    body = lines[0]["body"]
    assert body["model"] == "qwen-plus" and body["messages"][-1] == {"role": "user", "content": "一"}
    assert body["temperature"] == 0.3 and body["enable_thinking"] is False, "hybrid models are told explicitly"
    assert "stream" not in body and "stream_options" not in body


def test_twenty_rows_complete_through_files_and_batches_at_half_the_price(fake, sqlite_store):
    batches = remote(fake, sqlite_store)
    fake.batches.lines_per_poll = 7  # answered over several polls, as a real batch goes
    run_id = batches.submit("alice", spec(*[f"问题 {i}" for i in range(20)]), target(fake))
    assert fake.batches.files and next(iter(fake.batches.files.values()))["purpose"] == "batch"
    seen = []
    for _ in range(20):
        time.sleep(0.05)
        batches.poll_once()
        view = load_run(sqlite_store, "alice", run_id)
        seen.append(view.remote["status"])
        if view.finished:
            break
    assert seen[0] == "in_progress" and "finalizing" in seen and seen[-1] == "completed"
    assert view.status == "done" and [row.status for row in view.rows] == [DONE] * 20
    assert [row.answer.split(".")[0] for row in view.rows] == [f"Echo: 问题 {i}" for i in range(20)]
    price = price_table()["qwen-plus"]
    for row in view.rows:
        from atri.messages import Usage

        usage = Usage(prompt_tokens=row.prompt_tokens, completion_tokens=row.completion_tokens)
        assert row.cost == pytest.approx(request_cost(price, usage) * 0.5) and row.currency == "CNY"
    full, saved = with_saving(view)
    assert saved == pytest.approx(view.totals.cost) and full == pytest.approx(2 * view.totals.cost)
    assert view.remote["counts"] == {"total": 20, "completed": 20, "failed": 0}
    listed = sqlite_store.batch_runs("alice")
    assert listed[0]["status"] == "done" and listed[0]["cost"] == pytest.approx(view.totals.cost)


def test_a_row_the_provider_refuses_is_failed_with_its_reason_and_the_others_done(fake, sqlite_store):
    fake.script(Fault("status", 400, error_body("InvalidParameter", "bad row"), when="坏"))
    batches = remote(fake, sqlite_store)
    run_id = batches.submit("alice", spec("好", "坏", "也好"), target(fake))
    view = poll_until_ended(batches, sqlite_store, run_id)
    assert [row.status for row in view.rows] == [DONE, FAILED, DONE]
    assert view.rows[1].error_kind == "bad_request" and "bad row" in view.rows[1].error_detail
    assert view.rows[1].cost is None, "only successful requests are billed"


def test_a_batch_that_expires_half_done_keeps_what_finished_and_marks_the_rest(fake, sqlite_store):
    fake.batches.lines_per_poll = 3
    fake.batches.expire_after = 5
    batches = remote(fake, sqlite_store)
    run_id = batches.submit("alice", spec(*[f"q{i}" for i in range(10)]), target(fake))
    view = poll_until_ended(batches, sqlite_store, run_id)
    assert view.status == "expired" and view.remote["status"] == "expired"
    assert [row.status for row in view.rows] == [DONE] * 5 + [EXPIRED] * 5
    assert all(row.answer.startswith("Echo: q") and row.cost for row in view.rows[:5])
    assert not any(row.answer or row.cost for row in view.rows[5:])
    assert view.totals.done == 5 and view.totals.stopped == 5


def test_cancel_keeps_what_finished_and_stops_the_rest(fake, sqlite_store):
    fake.batches.lines_per_poll = 2
    batches = remote(fake, sqlite_store)
    run_id = batches.submit("alice", spec(*[f"q{i}" for i in range(6)]), target(fake))
    for _ in range(2):  # validating → in_progress, then two rows answered
        time.sleep(0.05)
        batches.poll_once()
    assert batches.cancel("bob", run_id) is None, "only its owner cancels a run"
    cancelled = batches.cancel("alice", run_id)
    assert cancelled.remote["status"] == "cancelling" and not cancelled.finished
    view = poll_until_ended(batches, sqlite_store, run_id)
    assert view.status == "stopped" and view.remote["status"] == "cancelled"
    assert [row.status for row in view.rows] == [DONE] * 2 + [STOPPED] * 4


def test_a_visitor_has_at_most_two_batches_at_the_provider_whichever_replica_sent_them(fake, database_url):
    fake.batches.hold = True
    one, other = remote(fake, Store(database_url)), remote(fake, Store(database_url))  # two replicas
    one.submit("alice", spec("q1"), target(fake))
    other.submit("alice", spec("q2"), target(fake))
    with pytest.raises(BatchInputError) as refused:
        one.submit("alice", spec("q3"), target(fake))
    assert refused.value.key == "batch_too_many_runs" and len(fake.batches.batches) == 2, "nothing uploaded"
    other.submit("bob", spec("q3"), target(fake))


def test_a_restarted_process_resumes_polling_a_batch_from_the_database(fake, database_url):
    fake.batches.lines_per_poll = 2
    first = remote(fake, Store(database_url))
    run_id = first.submit("alice", spec(*[f"q{i}" for i in range(4)]), target(fake))
    first.close()  # the process goes away with the batch still validating at DashScope
    store = Store(database_url)  # a new process on the same database
    from atri.batch import BatchRunner

    BatchRunner(store)  # its start-up marks real-time runs left running as interrupted, never a sent batch
    assert load_run(store, "alice", run_id).status == "running"
    again = remote(fake, store, start=True)
    try:
        deadline = time.time() + 10
        while not load_run(store, "alice", run_id).finished and time.time() < deadline:
            time.sleep(0.05)
    finally:
        again.close()
    view = load_run(store, "alice", run_id)
    assert view.status == "done" and [row.status for row in view.rows] == [DONE] * 4


def test_two_replicas_do_not_poll_the_same_batch_at_once(fake, store):
    """On SQLite and PostgreSQL: the claim is one atomic update."""
    url = store.engine.url.render_as_string(hide_password=False)
    one, two = remote(fake, store, every=30), remote(fake, Store(url), every=30)
    run_id = one.submit("alice", spec("a"), target(fake))
    every = timedelta(seconds=24)
    assert one.store.claim_remote_poll(run_id, every), "the first replica to ask claims the run"
    assert not two.store.claim_remote_poll(run_id, every), "the second replica saw the first one's claim"
    assert run_id in two.store.remote_runs_going_on()


def test_a_file_that_does_not_validate_fails_the_batch_and_says_why(fake, sqlite_store, monkeypatch):
    import atri.batch_api

    def broken(spec, target):
        return b'{"custom_id": "row-1", "method": "GET"}\n'

    monkeypatch.setattr("atri.batch_remote.jsonl_of", broken)
    batches = remote(fake, sqlite_store)
    run_id = batches.submit("alice", spec("a"), target(fake))
    view = poll_until_ended(batches, sqlite_store, run_id)
    assert view.status == "failed" and view.rows[0].error_kind == "batch_failed"
    assert "invalid_request" in view.rows[0].error_detail and "line 1" in view.rows[0].error_detail
    assert atri.batch_api.jsonl_of is not broken


def test_too_many_rows_or_too_big_a_file_is_refused_before_anything_is_sent(fake, monkeypatch):
    monkeypatch.setattr("atri.batch_api.MAX_LINES", 3)
    with pytest.raises(BatchInputError) as refused:
        jsonl_of(spec("a", "b", "c", "d"), target(fake))
    assert refused.value.key == "batch_api_too_many_rows" and refused.value.values == {"limit": 3}
    monkeypatch.setattr("atri.batch_api.MAX_FILE_BYTES", 600)
    with pytest.raises(BatchInputError) as refused:
        jsonl_of(spec("x" * 200, "y" * 200, "z" * 200), target(fake))
    assert refused.value.key == "batch_api_file_too_big"
    monkeypatch.setattr("atri.batch_api.MAX_LINE_BYTES", 100)
    with pytest.raises(BatchInputError) as refused:
        jsonl_of(spec("a"), target(fake))
    assert refused.value.key == "batch_api_line_too_big" and refused.value.values["row"] == 1
    assert not fake.batches.files


def test_a_result_file_is_read_only_for_this_runs_rows_and_within_bounds():
    good = {"custom_id": custom_id(0), "response": {"status_code": 200, "body": {
        "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1}}}, "error": None}
    stranger = {**good, "custom_id": "someone-else"}
    huge = {**good, "custom_id": custom_id(1), "pad": "x" * MAX_RESULT_LINE_BYTES}
    data = b"\n".join(json.dumps(line).encode() for line in (good, stranger, huge)) + b"\nnot json\n[1, 2]\n"
    outcomes = read_results(data, {custom_id(0), custom_id(1)})
    assert list(outcomes) == [custom_id(0)] and outcomes[custom_id(0)].answer == "hi"


def test_a_result_file_too_big_to_read_marks_its_rows_instead_of_reading_on(fake, sqlite_store, monkeypatch):
    monkeypatch.setattr("atri.batch_remote.MAX_RESULT_BYTES", 50)
    batches = remote(fake, sqlite_store)
    run_id = batches.submit("alice", spec("a", "b"), target(fake))
    view = poll_until_ended(batches, sqlite_store, run_id)
    assert view.remote["truncated"] and all(row.status == FAILED for row in view.rows)
    assert {row.error_kind for row in view.rows} == {"batch_no_result"}


def test_the_batch_share_of_the_price_table_is_half_and_applies_no_cache_discount():
    from atri.messages import Usage

    price = price_table()["qwen3-max"]
    assert price.batch_share == 0.5
    usage = Usage(prompt_tokens=1000, completion_tokens=500, cached_tokens=800)
    assert batch_cost(price, usage) == pytest.approx(request_cost(price, Usage(1000, 500)) / 2)
    assert price_table()["deepseek-chat"].batch_share is None


def test_a_batch_the_provider_no_longer_knows_fails_instead_of_being_polled_for_ever(fake, sqlite_store):
    batches = remote(fake, sqlite_store)
    run_id = batches.submit("alice", spec("a"), target(fake))
    fake.batches.batches.clear()  # as after the key changed to another account's
    view = poll_until_ended(batches, sqlite_store, run_id)
    assert view.status == "failed" and view.rows[0].error_kind == "batch_failed"
    assert "404" in view.rows[0].error_detail and sqlite_store.remote_runs_going_on() == []
