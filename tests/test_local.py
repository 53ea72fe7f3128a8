"""The embedded model, for real: assembled from its PyPI parts, served by llama.cpp on loopback."""
import hashlib
import json
import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from atri.answers import Answerer, TurnSetup
from atri.calls import run_turn
from atri.context import ContextSettings
from atri.local import (
    MODEL_SHA256,
    LocalModelError,
    assemble_model,
    cache_dir,
    gguf_token_counter,
    is_intact,
    part_paths,
    prepare_and_start,
)
from atri.messages import ChatOptions, Message
from atri.providers import LOCAL, catalogue
from atri.request import build_request
from atri.settings import Connection
from atri.store import Store

LOCAL_PROVIDER = catalogue()[LOCAL]
MODEL = LOCAL_PROVIDER.models[0]


@pytest.fixture(scope="module")
def engine():
    engine = prepare_and_start("", cache_dir())
    yield engine
    engine.stop()


def chat(engine, history, max_tokens=48, **options):
    conn = Connection(LOCAL_PROVIDER, engine.base_url, "not-needed")
    opts = ChatOptions(LOCAL, engine.model_id, temperature=0.0, **options)
    plan = build_request(history, opts, MODEL, LOCAL_PROVIDER)
    plan.kwargs["max_tokens"] = max_tokens
    turns = []
    for turn in run_turn(conn, plan, count=gguf_token_counter(str(engine.model_path))):
        turns.append(len(turn.content))
    return turn, turns


def test_the_cached_model_is_intact():
    assert is_intact(assemble_model(cache_dir()))


def test_a_corrupted_model_is_rebuilt_not_used(tmp_path: Path):
    parts = part_paths()
    target = tmp_path / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    source = assemble_model(cache_dir())
    target.write_bytes(source.read_bytes()[:1_000_000] + b"\0" * 10)  # a partial, corrupt file
    assert not is_intact(target)
    rebuilt = assemble_model(tmp_path, parts)
    assert rebuilt == target and is_intact(target)


def test_parts_that_do_not_add_up_are_refused(tmp_path: Path):
    bogus = tmp_path / "part.bin"
    bogus.write_bytes(b"not a model")
    with pytest.raises(LocalModelError, match="sha256"):
        assemble_model(tmp_path / "out", [bogus])
    assert not list((tmp_path / "out").glob("*.gguf"))
    assert hashlib.sha256(b"not a model").hexdigest() != MODEL_SHA256


def test_it_listens_on_loopback_only(engine):
    """The kernel's own table of listening sockets: bound to 127.0.0.1, not to every interface."""
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, port = local.rsplit(":", 1)
                if state == "0A" and int(port, 16) == engine.port:  # 0A: LISTEN
                    listening.append(address)
    assert listening == ["0100007F"], listening  # 127.0.0.1, little-endian hex


def test_streams_a_chinese_answer_with_counted_usage(engine):
    turn, lengths = chat(engine, [Message("user", "用一句话介绍你自己。")], system_prompt="你是一只可爱的猫娘,名字叫Atri")
    assert turn.error is None, turn.error
    assert turn.content.strip()
    assert len(set(lengths)) > 3, "the answer should arrive in several pieces"
    assert turn.usage.estimated and turn.usage.prompt_tokens > 10 and turn.usage.completion_tokens > 0


def test_json_mode_gives_json(engine):
    turn, _ = chat(engine, [Message("user", "Give the name and age of a cat called Atri, age 2.")],
                   max_tokens=64, json_mode=True)
    assert isinstance(json.loads(turn.content), dict)


def test_two_turns_send_the_first_answer_back(engine):
    first, _ = chat(engine, [Message("user", "My name is Xiaoming. Say hi.")], max_tokens=24)
    history = [Message("user", "My name is Xiaoming. Say hi."), Message("assistant", first.content),
               Message("user", "What is my name?")]
    second, _ = chat(engine, history, max_tokens=24)
    assert first.content in json.dumps(second.request["messages"], ensure_ascii=False)
    assert "xiaoming" in second.content.lower()


def test_two_sessions_at_once_both_get_answers(engine):
    results = {}

    def ask(name):
        results[name], _ = chat(engine, [Message("user", f"Count from 1 to 5, {name}.")], max_tokens=24)

    threads = [threading.Thread(target=ask, args=(n,)) for n in ("Ann", "Bo")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(r.error is None and r.content and r.finish_reason for r in results.values()), results


def servers_started_here() -> dict[int, list[str]]:
    """The llama.cpp servers this process started, by pid: their command lines, from /proc."""
    servers = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue  # it ended meanwhile
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and "llama_cpp.server" in argv:
            servers[int(pid)] = argv
    return servers


def test_with_no_key_the_page_chats_offline(monkeypatch, database_url):
    import streamlit as st

    from tests.conftest import PROVIDER_ENV, new_app

    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATRI_DATABASE_URL", database_url)
    monkeypatch.setenv("ATRI_LOCAL_THREADS", "1")
    st.cache_resource.clear()
    before = servers_started_here()
    try:
        at = new_app()
        started = [argv for pid, argv in servers_started_here().items() if pid not in before]
        assert len(started) == 1 and started[0][started[0].index("--n_threads") + 1] == "1", started
        assert at.selectbox(key="provider").value == "local"
        at.chat_input[0].set_value("你好").run(timeout=120)
        assert not at.exception
        assert [m.name for m in at.chat_message] == ["user", "assistant"]
        assert at.chat_message[1].markdown[0].value.strip()
        facts = next(c.value for c in at.caption if c.value.startswith("qwen2.5-coder"))
        assert "≈" in facts and "counted locally" in facts
        assert "This model cannot switch thinking" in " ".join(c.value for c in at.caption)
    finally:
        st.cache_resource.clear()  # releases (stops) the page's engine


def test_two_browser_sessions_chat_with_the_local_model_at_once(database_url):
    """The second visitor sees their place in line while the first one's answer streams, then gets theirs."""
    from playwright.sync_api import expect, sync_playwright

    from tests.browser import IDLE, NO_CHROMIUM, chromium_available, launch, streamlit_server

    if not chromium_available():
        pytest.skip(NO_CHROMIUM)
    with streamlit_server({"ATRI_DATABASE_URL": database_url}) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        pages = [browser.new_context(locale="zh-CN").new_page() for _ in range(2)]
        for page in pages:
            page.goto(app.url)
            page.wait_for_selector(IDLE, timeout=120_000)
        first, second = pages
        first.get_by_test_id("stChatInputTextArea").fill("Count from 1 to 40, separated by commas.")
        first.keyboard.press("Enter")
        expect(first.get_by_test_id("stChatMessage").nth(1)).to_contain_text("3", timeout=60_000)  # it streams
        second.get_by_test_id("stChatInputTextArea").fill("Say hello in one short sentence.")
        second.keyboard.press("Enter")
        expect(second.get_by_test_id("stChatMessage").nth(1)).to_contain_text("你排在第 1 位", timeout=30_000)
        for page in pages:
            answer = page.get_by_test_id("stChatMessage").nth(1)
            expect(answer).to_contain_text("详情", timeout=120_000)  # its details control: the answer ended
            expect(answer.get_by_test_id("stAlert")).to_have_count(0)  # no error box
        browser.close()


def test_an_image_sent_to_the_embedded_model_gets_a_text_answer_and_a_note(engine):
    """It cannot see: llama.cpp's template used to fail on image parts, and every later turn with it."""
    from atri.images import image_from_bytes
    from tests.test_images import png

    url, thumbnail = image_from_bytes("cat.png", png(64, 64))
    question = Message("user", "Say hello.", images=[url, "https://example.com/cat.png"], thumbnails=[thumbnail, ""])
    first, _ = chat(engine, [question], max_tokens=16)
    assert first.error is None and first.content.strip()
    assert "note_model_no_vision" in first.notes
    assert "image_url" not in json.dumps(first.request["messages"])
    second, _ = chat(engine, [question, Message("assistant", first.content), Message("user", "Again.")], max_tokens=16)
    assert second.error is None and second.content.strip()


def posts_to(engine) -> int:
    """Chat requests the server has received so far, from its access log."""
    log = engine.model_path.parent / "local-server.log"
    return log.read_text(errors="replace").count("POST /v1/chat/completions")


def test_answers_on_the_embedded_model_wait_their_turn_in_a_visible_line(engine, tmp_path):
    """Three visitors at once: one generates at full speed, the others see their place; one leaves the line."""
    store = Store(f"sqlite:///{tmp_path / 'atri.db'}")
    answerer = Answerer(store)
    setup = TurnSetup(ChatOptions(LOCAL, engine.model_id, temperature=0.0),
                      Connection(LOCAL_PROVIDER, engine.base_url, "not-needed"),
                      replace(MODEL, max_output=32),  # short answers: the app caps the local model at max_output
                      gguf_token_counter(str(engine.model_path)), ContextSettings())
    sent_before = posts_to(engine)
    lives = []
    for owner, question in [("ann", "Count from 1 to 30."), ("bo", "Name three colours."), ("cy", "Say hi.")]:
        cid = store.create_conversation(owner, question)
        store.append(owner, cid, Message("user", question))
        lives.append(answerer.start(owner, cid, setup))
    try:
        deadline = time.monotonic() + 60
        while sorted((live.phase, live.queue_position) for live in lives) != [
                ("queued", 1), ("queued", 2), ("streaming", 0)]:
            assert time.monotonic() < deadline, [(live.phase, live.queue_position) for live in lives]
            time.sleep(0.005)
        first = next(live for live in lives if live.phase == "streaming")
        second = next(live for live in lives if live.queue_position == 1)
        leaving = next(live for live in lives if live.queue_position == 2)
        answerer.stop(leaving.owner, leaving.cid)
        for live in lives:
            assert live.done.wait(120), "the answer did not end"
        assert leaving.turn.first_token_at is None and not leaving.turn.content
        assert store.messages(leaving.owner, leaving.cid)[-1].facts.error_kind == "stopped"
        for live in (first, second):
            assert live.turn.error is None and live.turn.content.strip(), live.turn.error
        assert second.turn.started >= first.turn.ended_at, "one answer at a time, in order"
        assert posts_to(engine) - sent_before == 2, "the answer stopped in line sent nothing"
    finally:
        answerer.close()


# --- tools against llama-cpp-python's server (issue 32, row 1) -----------------------------------------------

FUNCTION_CALLING = "chatml-function-calling"  # llama-cpp-python returns tool_calls only with such a format
WITH_TOOL_CHOICE = replace(LOCAL_PROVIDER, tool_choice_auto=True)  # that format offers no tool without it
TOOL_QUESTIONS = [("What is 1234 * 5678? Use the calculator.", "calculator"), ("现在上海几点？", "current_time"),
                  ("Write a haiku about spring.", None), ("Write a Python function that reverses a string.", None)]


@pytest.fixture(scope="module")
def calling_engine():
    from atri.local import BUNDLED_MODEL_ID, start_engine

    engine = start_engine(assemble_model(cache_dir()), BUNDLED_MODEL_ID, chat_format=FUNCTION_CALLING)
    yield engine
    engine.stop()


def tool_plan(engine, question, provider=WITH_TOOL_CHOICE):
    from atri.tools import CALCULATOR, CURRENT_TIME, Toolbox, builtin_tools

    box = Toolbox(builtin_tools([CALCULATOR, CURRENT_TIME], "Asia/Shanghai"))
    options = ChatOptions(LOCAL, engine.model_id, temperature=0.0, tools=[CALCULATOR, CURRENT_TIME])
    plan = build_request([Message("user", question)], options, replace(MODEL, tools=True), provider, tools=box.schemas())
    plan.kwargs["max_tokens"] = 64
    return Connection(provider, engine.base_url, "not-needed"), plan, box


def test_the_bundled_model_is_offered_no_tools_because_it_cannot_use_them(calling_engine):
    """Measured: asked with tool_choice "auto" under chatml-function-calling, the 0.5B must call the right tool when
    one is needed and answer in words when none is, for the catalogue to offer it tools. It does not (in Dec 2026,
    llama-cpp-python 0.3.36: few right calls, and a plain answer comes back as "functions.<name>:")."""
    right = []
    for question, wanted in TOOL_QUESTIONS:
        conn, plan, _ = tool_plan(calling_engine, question)
        assert plan.kwargs["tool_choice"] == "auto"
        turn = list(run_turn(conn, plan))[-1]
        assert turn.error is None, turn.error
        called = [call.name for call in turn.calls]
        right.append(called == [wanted] if wanted else not called and not turn.content.startswith("functions."))
    print(f"\nthe bundled model used tools rightly for {sum(right)} of {len(right)} questions: {right}")
    assert MODEL.tools == (sum(right) == len(right)), "the catalogue's `tools` should follow the measurement"
    assert not MODEL.tools and MODEL.tools_note == "tools_not_offered_embedded"


def test_a_tool_loop_against_llama_cpps_server_completes_two_rounds(calling_engine):
    """The call forced by naming the tool (so that the 0.5B's choice does not matter), run, its result sent back with
    the assistant step's content "" (null is answered 500), then the answer asked with tool_choice "none"."""
    from atri.tool_loop import run_turn_with_tools

    conn, plan, box = tool_plan(calling_engine, "What time is it in Shanghai?")
    plan.kwargs["tool_choice"] = {"type": "function", "function": {"name": "current_time"}}
    turn = list(run_turn_with_tools(conn, plan, box, max_steps=1))[-1]
    assert turn.error is None, turn.error
    [step] = turn.tool_steps
    assert step.name == "current_time" and step.error is None and '"timezone"' in step.result
    assert turn.finish_reason in ("stop", "length") and turn.content.strip()
