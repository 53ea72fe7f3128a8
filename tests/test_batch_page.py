"""The Batch page through AppTest, against the fake DashScope server, with its own database."""
import time

import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT
from tests.fake_provider import Fault, error_body

PAGE = str(ROOT / "app_pages" / "2_Batch.py")


def batch_app(owner="alice"):
    st.cache_resource.clear()
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["owner"] = owner
    at.run()
    assert not at.exception, at.exception
    return at


def until_finished(at, seconds=15):
    """Reruns the page until the run has ended (AppTest does not rerun fragments on a timer)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        at.run()
        assert not at.exception, at.exception
        if any(b.label.startswith("Download CSV") for b in at.get("download_button")):
            return at
        time.sleep(0.1)
    raise AssertionError("the run did not finish")


def table(at):
    return at.dataframe[0].value


def test_prompts_typed_one_per_line_run_and_show_a_row_each(dashscope_env):
    at = batch_app()
    at.selectbox(key="batch_model").set_value("dashscope · qwen-plus").run()
    at.text_area(key="batch_lines").set_value("用一句话介绍杭州\n用一句话介绍苏州\n").run()
    at.text_input(key="batch_template").set_value("{text}(请用中文)").run()
    assert any("Ready: 2 requests." in c.value for c in at.caption)
    at.button(key="batch_start").click().run()
    until_finished(at)
    frame = table(at)
    assert list(frame["Status"]) == ["✅ done", "✅ done"]
    assert frame["Answer"][0].startswith("Echo: 用一句话介绍杭州(请用中文)")
    assert all(frame["First token"] >= 0) and all(frame["Cost"].str.startswith("¥"))
    assert any(c.value.startswith("2 done · 0 failed") for c in at.caption)
    assert {r["model"] for r in dashscope_env.streamed} == {"qwen-plus"}
    assert any("+1" in b.label and "2 rows (0 failed)" in b.label for b in at.button), "the run is listed among the last runs"


def test_a_failing_row_says_why_and_the_others_finish(dashscope_env):
    dashscope_env.script(Fault("status", 400, error_body("InvalidParameter", "no good"), when="坏"))
    at = batch_app()
    at.text_area(key="batch_lines").set_value("好\n坏\n也好").run()
    at.button(key="batch_start").click().run()
    until_finished(at)
    frame = table(at)
    assert list(frame["Status"]) == ["✅ done", "❌ failed", "✅ done"]
    assert "The request was refused (400): InvalidParameter — no good" in frame["Answer"][1]


def test_a_csv_upload_fills_the_template_from_its_columns(dashscope_env):
    at = batch_app()
    at.radio(key="batch_source").set_value("file").run()
    assert at.button(key="batch_start").disabled
    csv = "city,lang\n杭州,English\nParis,中文\n".encode("utf-8-sig")
    at.file_uploader(key="batch_file").upload("cities.csv", csv, "text/csv").run()
    assert at.selectbox(key="batch_column").options == ["city", "lang"]
    at.text_input(key="batch_template").set_value("Describe {city} in {lang}.").run()
    at.button(key="batch_start").click().run()
    until_finished(at)
    assert list(table(at)["Prompt"]) == ["Describe 杭州 in English.", "Describe Paris in 中文."]
    at.file_uploader(key="batch_file").upload("notes.csv", b"\xff\xfe\x00bad" * 10, "text/csv").run()
    assert "notes.csv is neither UTF-8 nor GBK text" in at.error[0].value


def test_bad_input_gets_a_specific_message_and_no_run(dashscope_env):
    at = batch_app()
    at.text_area(key="batch_lines").set_value("猫").run()
    at.text_input(key="batch_template").set_value("Translate {txt}").run()
    assert [e.value for e in at.error] == ["The template's {txt} is not a column. Columns: text"]
    assert at.button(key="batch_start").disabled


def test_a_sweep_runs_each_setting_and_shows_them_side_by_side(dashscope_env):
    at = batch_app()
    at.selectbox(key="batch_model").set_value("dashscope · qwen-plus").run()
    at.get("button_group")[0].set_value("sweep").run()
    at.text_area(key="batch_sweep_prompt").set_value("写一句关于猫的诗").run()
    at.text_input(key="batch_sweep_temperatures").set_value("0.2, 1.0").run()
    at.text_input(key="batch_sweep_budgets").set_value("5").run()
    assert any("Ready: 4 requests." in c.value for c in at.caption)
    at.button(key="batch_start").click().run()
    until_finished(at)
    frame = table(at)
    assert list(frame["Settings"]) == ["T=0.2 · no thinking", "T=0.2 · thinking · budget 5", "T=1 · no thinking",
                                       "T=1 · thinking · budget 5"]
    assert any(h.value == "Side by side" for h in at.subheader)
    assert sum(e.label.startswith("Reasoning") for e in at.expander) == 2


def test_the_sweep_refuses_thinking_on_a_model_that_cannot_switch(dashscope_env):
    at = batch_app()
    at.selectbox(key="batch_model").set_value("dashscope · qwq-plus").run()
    at.get("button_group")[0].set_value("sweep").run()
    at.text_area(key="batch_sweep_prompt").set_value("hi").run()
    thinking = at.multiselect[0]
    assert thinking.value == ["off"]
    thinking.set_value(["off", "on"]).run()
    assert "qwq-plus cannot switch thinking on and off" in at.error[0].value


def test_stop_keeps_what_finished_and_a_saved_run_reopens(dashscope_env):
    dashscope_env.first_token_delay_s = 0.3
    at = batch_app()
    at.text_area(key="batch_lines").set_value("\n".join(f"问题 {i}" for i in range(12))).run()
    at.number_input(key="batch_concurrency").set_value(2).run()
    at.button(key="batch_start").click().run()
    deadline = time.time() + 10
    while time.time() < deadline:
        at.run()
        if sum(status == "✅ done" for status in table(at)["Status"]) >= 2:
            break
        time.sleep(0.1)
    at.button(key="batch_stop").click().run()
    until_finished(at)
    statuses = list(table(at)["Status"])
    assert statuses.count("✅ done") >= 2 and statuses.count("⏹️ stopped") >= 6
    assert set(statuses) <= {"✅ done", "⏹️ stopped"}

    again = batch_app()  # a new tab of the same visitor
    reopen = [b for b in again.button if b.key and b.key.startswith("batch_reopen::")]
    assert len(reopen) == 1
    reopen[0].click().run()
    assert list(table(again)["Status"]) == statuses
    assert not [b for b in batch_app("bob").button if b.key and b.key.startswith("batch_reopen::")]


def test_a_table_past_a_limit_is_refused_with_the_limit_as_a_number(dashscope_env):
    at = batch_app()
    at.radio(key="batch_source").set_value("file").run()
    wide = (",".join(f"c{i}" for i in range(5_000)) + "\nx" * 2_000).encode()
    at.file_uploader(key="batch_file").upload("wide.csv", wide, "text/csv").run()
    assert not at.exception
    assert [e.value for e in at.error] == ["At most 500 columns: this table has more."]
    assert at.button(key="batch_start").disabled


# --- DashScope's Batch API (issue 31) ---


def test_the_batch_api_is_offered_for_dashscope_and_not_for_another_provider(dashscope_env, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-good-key")
    monkeypatch.setenv("OPENAI_BASE_URL", dashscope_env.base_url)
    at = batch_app()
    at.selectbox(key="batch_model").set_value("dashscope · qwen-plus").run()
    offer = at.radio(key="batch_delivery")
    assert offer.options == ["Real time (requests now)", "DashScope Batch (50 %, results within 24 h)"]
    assert offer.value == "now", "real time stays the default"
    other = next(c for c in at.selectbox(key="batch_model").options if c.startswith("openai · "))
    at.selectbox(key="batch_model").set_value(other).run()
    assert not [r for r in at.radio if r.key == "batch_delivery"]
    assert at.number_input(key="batch_concurrency"), "real time only, with its concurrency"


def test_a_batch_sent_to_dashscope_shows_its_state_then_its_rows_cost_and_saving(dashscope_env, monkeypatch):
    monkeypatch.setenv("ATRI_BATCH_POLL_S", "0.1")  # the server's worker asks the fake ten times a second
    dashscope_env.batches.lines_per_poll = 1
    at = batch_app()
    at.selectbox(key="batch_model").set_value("dashscope · qwen-plus").run()
    at.radio(key="batch_delivery").set_value("batch_api").run()
    assert not [n for n in at.number_input if n.key == "batch_concurrency"], "DashScope sets the pace of a batch"
    at.text_area(key="batch_lines").set_value("\n".join(f"问题 {i}" for i in range(4))).run()
    assert at.button(key="batch_start").label == "Submit the batch"
    at.button(key="batch_start").click().run()
    assert not at.exception, at.exception
    states = {m.value for m in at.markdown if "DashScope Batch state:" in m.value}
    assert states, "the page says where DashScope is with the batch"
    until_finished(at)
    assert any("DashScope Batch state: completed · 4 of 4 requests done, 0 failed" in m.value for m in at.markdown)
    frame = table(at)
    assert list(frame["Status"]) == ["✅ done"] * 4 and frame["Answer"][0].startswith("Echo: 问题 0")
    assert all(frame["Cost"].str.startswith("¥"))
    saving = [s.value for s in at.success if "saved" in s.value]
    assert saving and saving[0].startswith("At real-time prices: ¥") and "at the batch price: ¥" in saving[0]
    assert not dashscope_env.streamed, "no real-time request was sent"
    assert len(dashscope_env.batches.bodies) == 4


def test_a_batch_can_be_cancelled_from_the_page(dashscope_env, monkeypatch):
    monkeypatch.setenv("ATRI_BATCH_POLL_S", "0.1")
    dashscope_env.batches.hold = True  # DashScope has started it but answered nothing yet
    at = batch_app()
    at.radio(key="batch_delivery").set_value("batch_api").run()
    at.text_area(key="batch_lines").set_value("一\n二").run()
    at.button(key="batch_start").click().run()
    deadline = time.time() + 10
    while time.time() < deadline and not any("in progress" in m.value for m in at.markdown):
        time.sleep(0.1)
        at.run()
    cancel = [b for b in at.button if b.key and b.key.startswith("batch_api_cancel::")]
    assert cancel, "a batch going on can be cancelled"
    cancel[0].click().run()
    until_finished(at)
    assert list(table(at)["Status"]) == ["⏹️ stopped"] * 2
    assert any("cancelled (finished results kept)" in m.value for m in at.markdown)
