"""Batch runs: the real openai SDK (async client) against the fake DashScope server over real HTTP."""
import io
import json
import threading
import time

import pytest

from atri.batch import DONE, FAILED, STOPPED, BatchRun, BatchRunner, load_run, run_sync, to_csv, to_jsonl
from atri.batch_plan import Variant, batch_spec, fill, parse_numbers, prompts_from, sweep_spec
from atri.calls import Target
from atri.pricing import price_table
from atri.providers import catalogue
from atri.settings import Settings
from atri.tables import BatchInputError, read_table, table_from_lines
from tests.fake_provider import GOOD_KEY, RATE_LIMITED, Fault, error_body

DASHSCOPE = catalogue()["dashscope"]
QUOTA = error_body("Throttling.AllocationQuota", "Allocated quota exceeded, please increase your quota limit.",
                   "limit_requests")


def target(fake, model="qwen-plus", key=GOOD_KEY):
    conn = Settings({"DASHSCOPE_API_KEY": key, "DASHSCOPE_BASE_URL": fake.base_url}).connection(DASHSCOPE)
    return Target(conn, DASHSCOPE.model(model), price_table().get(model))


def prompts(*texts):
    return [(text, {"text": text}) for text in texts]


def spec(*texts, concurrency=8, **variant):
    return batch_spec("dashscope", "qwen-plus", prompts(*texts), Variant(**variant), concurrency=concurrency)


# --- input ---


def test_one_prompt_per_line_and_a_template_fills_each_line():
    table = table_from_lines("苹果\n\n  banana  \n")
    assert prompts_from(table) == [("苹果", {"text": "苹果"}), ("banana", {"text": "banana"})]
    filled = prompts_from(table, "Translate into English: {text}")
    assert [p for p, _ in filled] == ["Translate into English: 苹果", "Translate into English: banana"]


def test_a_csv_with_a_prompt_column_and_other_columns_in_a_template():
    data = "city,lang\n杭州,English\nParis,中文\n".encode("utf-8-sig")
    table = read_table("cities.csv", data)
    assert table.columns == ["city", "lang"]
    filled = prompts_from(table, "Describe {city} in {lang}, in one sentence.")
    assert filled[0][0] == "Describe 杭州 in English, in one sentence."
    assert prompts_from(table, column="city")[1][0] == "Paris"


def test_a_gbk_csv_from_excel_and_semicolons_are_read():
    table = read_table("excel.csv", "提示词;备注\n你好;一\n".encode("gb18030"))
    assert table.columns == ["提示词", "备注"] and prompts_from(table)[0][0] == "你好"


def test_an_xlsx_upload_is_read():
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["prompt", "n"])
    sheet.append(["第一", 1])
    sheet.append([None, None])
    sheet.append(["second", 2.0])
    buffer = io.BytesIO()
    book.save(buffer)
    table = read_table("sheet.xlsx", buffer.getvalue())
    assert table.rows == [{"prompt": "第一", "n": "1"}, {"prompt": "second", "n": "2"}]
    assert [p for p, _ in prompts_from(table)] == ["第一", "second"]


@pytest.mark.parametrize("name, data, key", [
    ("notes.pdf", b"%PDF", "batch_file_type"),
    ("empty.csv", b"", "batch_file_empty"),
    ("header-only.csv", b"prompt\n", "batch_file_empty"),
    ("broken.xlsx", b"not a workbook", "batch_file_unreadable"),
    ("binary.csv", bytes(range(128, 256)) * 3, "batch_file_encoding"),
])
def test_files_that_cannot_be_read_say_why(name, data, key):
    with pytest.raises(BatchInputError) as refused:
        read_table(name, data)
    assert refused.value.key == key


def test_a_template_naming_a_missing_column_names_it_and_the_columns_there_are():
    table = read_table("t.csv", b"city,lang\nA,B\n")
    with pytest.raises(BatchInputError) as refused:
        prompts_from(table, "Describe {country}")
    assert refused.value.key == "batch_template_unknown"
    assert refused.value.values == {"field": "country", "columns": "city, lang"}
    with pytest.raises(BatchInputError) as refused:
        prompts_from(table)  # two columns, none called prompt
    assert refused.value.key == "batch_no_prompt_column"


def test_a_template_cannot_reach_attributes_and_braces_can_be_escaped():
    assert fill("{{json}} {text}", {"text": "x"}) == "{json} x"
    table = table_from_lines("x")
    with pytest.raises(BatchInputError):
        prompts_from(table, "{text.__class__}")


def test_a_sweep_is_temperatures_times_thinking_times_budgets():
    model = DASHSCOPE.model("qwen-plus")
    sweep = sweep_spec("dashscope", model, "写一句诗", [0.2, 1.0], [False, True], [100, 500])
    labels = [row.variant.label() for row in sweep.rows]
    assert labels == ["T=0.2 · no thinking", "T=0.2 · thinking · budget 100", "T=0.2 · thinking · budget 500",
                      "T=1 · no thinking", "T=1 · thinking · budget 100", "T=1 · thinking · budget 500"]
    with pytest.raises(BatchInputError) as refused:
        sweep_spec("dashscope", DASHSCOPE.model("qwq-plus"), "x", [0.5], [False, True], [])
    assert refused.value.key == "batch_sweep_cannot_switch"
    with pytest.raises(BatchInputError) as refused:
        parse_numbers("0.2, warm")
    assert refused.value.values == {"value": "warm"}
    assert parse_numbers("0, 0.7；1.2，0.7") == [0.0, 0.7, 1.2], "Chinese separators too; repeats once"
    assert parse_numbers("100 500", int) == [100, 500]


# --- running ---


def test_rows_really_run_at_the_same_time(fake):
    fake.first_token_delay_s = 1.0  # long enough that all eight have started even on a loaded machine
    texts = [f"问题 {i}" for i in range(8)]
    started = time.perf_counter()
    view = run_sync(BatchRun("alice", spec(*texts, concurrency=8), target(fake)))
    wall = time.perf_counter() - started
    assert [row.status for row in view.rows] == [DONE] * 8
    assert [row.answer.split(".")[0] for row in view.rows] == [f"Echo: {t}" for t in texts], "each row its own answer"
    assert fake.most_in_flight == 8, "all eight were being answered at once"
    assert wall < 5.0, f"8 answers of 1 s took {wall:.2f} s: one after another would take 8 s"
    assert all(row.ttft_s >= 0.35 and row.total_s >= row.ttft_s for row in view.rows)
    totals = view.totals
    assert totals.done == 8 and totals.prompt_tokens > 0 and totals.cost > 0 and totals.currency == "CNY"


def test_the_concurrency_limit_is_kept(fake):
    fake.first_token_delay_s = 0.3
    started = time.perf_counter()
    view = run_sync(BatchRun("alice", spec(*[f"q{i}" for i in range(6)], concurrency=2), target(fake)))
    wall = time.perf_counter() - started
    assert view.totals.done == 6
    assert fake.most_in_flight == 2, f"{fake.most_in_flight} answers were asked for at once, the limit is 2"
    assert wall > 0.85, f"6 answers of 0.3 s two at a time take at least 0.9 s, not {wall:.2f} s"


def test_a_failing_row_is_marked_and_the_others_finish(fake):
    fake.script(Fault("status", 400, error_body("InvalidParameter", "bad row"), when="坏"))
    view = run_sync(BatchRun("alice", spec("好 1", "坏", "好 2"), target(fake)))
    assert [row.status for row in view.rows] == [DONE, FAILED, DONE]
    failed = view.rows[1]
    assert failed.error_kind == "bad_request" and "bad row" in failed.error_detail and not failed.answer
    assert view.totals.failed == 1 and view.totals.done == 2


def test_a_429_waits_as_long_as_retry_after_says_and_goes_again(fake):
    # The SDK tries three times itself (honouring Retry-After too); the fourth try is ours.
    fake.script(*[Fault("status", 429, RATE_LIMITED, headers={"Retry-After": "0.3"}) for _ in range(3)])
    started = time.perf_counter()
    view = run_sync(BatchRun("alice", spec("限流"), target(fake)))
    wall = time.perf_counter() - started
    row = view.rows[0]
    assert row.status == DONE and row.answer.startswith("Echo: 限流") and row.retries == 1
    assert wall >= 0.9, f"three waits of 0.3 s were asked for; the row went again after {wall:.2f} s"
    assert len(fake.streamed) == 4


def test_an_exhausted_quota_is_not_retried_by_us(fake):
    fake.script(*[Fault("status", 429, QUOTA, when="配额") for _ in range(3)])
    view = run_sync(BatchRun("alice", spec("配额", "fine"), target(fake)))
    assert view.rows[0].status == FAILED and view.rows[0].error_kind == "quota" and view.rows[0].retries == 0
    assert view.rows[1].status == DONE


def test_a_wrong_key_fails_every_row_with_the_reason_and_no_key_shown(fake):
    view = run_sync(BatchRun("alice", spec("a", "b"), target(fake, key="sk-wrong-key-123")))
    assert [row.error_kind for row in view.rows] == ["auth", "auth"]
    assert "sk-wrong-key-123" not in json.dumps([row.record() for row in view.rows])


def test_stop_cancels_what_is_left_and_keeps_what_finished(fake):
    fake.first_token_delay_s = 0.3
    run = BatchRun("alice", spec(*[f"q{i}" for i in range(10)], concurrency=2), target(fake))
    thread = threading.Thread(target=run_sync, args=(run,))
    thread.start()
    deadline = time.time() + 5
    while run.view().totals.done < 2 and time.time() < deadline:
        time.sleep(0.02)
    run.stop()
    thread.join(5)
    view = run.view()
    assert view.status == "stopped"
    done = [row for row in view.rows if row.status == DONE]
    assert 2 <= len(done) <= 4 and all(row.answer.startswith("Echo") for row in done)
    assert all(row.status in (DONE, STOPPED) for row in view.rows)
    assert sum(row.status == STOPPED for row in view.rows) >= 6
    assert len(fake.requests) <= 6, "rows after Stop were never sent"


def test_a_sweep_sends_each_variant_as_asked(fake):
    model = DASHSCOPE.model("qwen-plus")
    sweep = sweep_spec("dashscope", model, "写一句诗", [0.3], [False, True], [5])
    view = run_sync(BatchRun("alice", sweep, target(fake)))
    sent = sorted(fake.streamed, key=lambda r: r["enable_thinking"])
    assert [(r["temperature"], r["enable_thinking"], r.get("thinking_budget")) for r in sent] == [
        (0.3, False, None), (0.3, True, 5)]
    off, on = view.rows
    assert not off.reasoning and on.reasoning and on.reasoning_tokens <= 5


def test_downloads_carry_every_row(fake):
    fake.script(Fault("status", 400, error_body("InvalidParameter", "no"), when="坏"))
    table = read_table("t.csv", "text,lang\n猫,English\n坏,中文\n".encode())
    view = run_sync(BatchRun("alice", batch_spec("dashscope", "qwen-plus", prompts_from(table, "{text} → {lang}"),
                                                 Variant()), target(fake)))
    lines = [json.loads(line) for line in to_jsonl(view.rows).decode().splitlines()]
    assert [line["status"] for line in lines] == ["done", "failed"]
    assert lines[0]["answer"].startswith("Echo: 猫 → English") and lines[1]["error_kind"] == "bad_request"
    text = to_csv(view.rows).decode("utf-8-sig")
    header = text.splitlines()[0].split(",")
    assert header[:3] == ["index", "status", "prompt"] and header[-2:] == ["text", "lang"]
    assert "猫 → English" in text


def test_a_run_is_saved_and_reopens_for_its_owner_only(fake, store):
    runner = BatchRunner(store)
    run = runner.start("alice", spec("一", "二"), target(fake))
    assert run.wait(10)
    listed = store.batch_runs("alice")
    assert [(r["id"], r["rows"], r["failed"], r["status"]) for r in listed] == [(run.id, 2, 0, "done")]
    assert listed[0]["cost"] > 0 and listed[0]["model"] == "qwen-plus"
    reopened = load_run(store, "alice", run.id)
    assert [row.answer for row in reopened.rows] == [row.answer for row in run.view().rows]
    assert reopened.rows[0].status == DONE and reopened.totals.done == 2
    assert load_run(store, "bob", run.id) is None and store.batch_runs("bob") == []


def test_one_visitor_cannot_start_many_runs_at_once(fake):
    fake.first_token_delay_s = 0.5
    runner = BatchRunner()
    first, second = runner.start("alice", spec("a"), target(fake)), runner.start("alice", spec("b"), target(fake))
    with pytest.raises(BatchInputError) as refused:
        runner.start("alice", spec("c"), target(fake))
    assert refused.value.key == "batch_too_many_runs"
    other = runner.start("bob", spec("d"), target(fake))
    for run in (first, second, other):
        assert run.wait(10)
