"""Tools that ask first (issue 32): a tool the server marks destructive, or one the host lists under "approve",
waits for the visitor's Approve or Deny before it runs; Deny (or no answer in time) goes back to the model as the
tool's result and the tool does not run; only the answer's owner decides; Stop while waiting ends the answer.
And the schemas of the tools offered count toward the context meter and toward quota admission.

A real MCP server (tests/mcp_server.py with `--files`: the filesystem reference server's write_file and read_file,
annotated as it annotates them) writing real files, the fake DashScope server over real HTTP, a real store."""
import json
import sys
import time

import pytest

from atri.answers import Answerer, TurnSetup
from atri.approval import PendingCall
from atri.context import ContextSettings, plan_context
from atri.mcp_tools import McpConfigError, McpHub, parse_config
from atri.messages import ChatOptions, Message
from atri.providers import catalogue
from atri.quotas import Meter, Payer, Quotas, input_estimate
from atri.request import build_request
from atri.settings import Connection, QuotaLimits
from atri.store import Store
from atri.tokens import rough_count, schema_tokens
from atri.tool_loop import run_turn_with_tools
from atri.tools import Toolbox, builtin_tools
from tests.conftest import ROOT
from tests.fake_provider import GOOD_KEY

DASHSCOPE = catalogue()["dashscope"]
QWEN_PLUS = DASHSCOPE.model("qwen-plus")
WRITE = 'Save it [[files__write_file {"path": "note.txt", "content": "hello"}]]'


def files_server(folder, **extra):
    return {"command": sys.executable, "args": ["-m", "tests.mcp_server", "--files", str(folder)], "cwd": str(ROOT),
            **extra}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("files")


@pytest.fixture(scope="module")
def hub(folder):
    hub = McpHub(parse_config(json.dumps({"mcpServers": {
        "files": files_server(folder), "listed": files_server(folder, approve=["shout"]),
        "careful": files_server(folder, approve="all")}})), call_timeout_s=20)
    hub.wait_ready(60)
    yield hub
    hub.close()


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'atri.db'}")


@pytest.fixture
def answerer(store):
    answerer = Answerer(store)
    yield answerer
    answerer.close()


@pytest.fixture(autouse=True)
def clean(folder):
    for path in folder.iterdir():
        path.unlink()


def start(fake, store, answerer, hub, question, owner="alice", servers=("files",)):
    cid = store.create_conversation(owner, question)
    store.append(owner, cid, Message("user", question))
    toolbox = Toolbox(hub.tools(set(servers)))
    setup = TurnSetup(ChatOptions("dashscope", "qwen-plus", tools=[tool.name for tool in toolbox.tools]),
                      Connection(DASHSCOPE, fake.base_url, GOOD_KEY), QWEN_PLUS, rough_count, ContextSettings(),
                      tools=toolbox)
    return cid, answerer.start(owner, cid, setup)


def waiting_call(live, timeout_s=20.0) -> PendingCall:
    deadline = time.monotonic() + timeout_s
    while live.pending is None and not live.done.is_set() and time.monotonic() < deadline:
        live.wait_for_change(live.version, 0.2)
    assert live.pending is not None, f"no call waits for approval (phase {live.phase})"
    return live.pending


def tool_message(fake):
    return next(m for m in reversed(fake.streamed[-1]["messages"]) if m["role"] == "tool")


def test_a_destructive_call_waits_and_runs_once_approved(fake, store, answerer, hub, folder):
    cid, live = start(fake, store, answerer, hub, WRITE)
    pending = waiting_call(live)
    assert live.phase == "awaiting_approval"
    assert (pending.tool, pending.server, json.loads(pending.arguments)) == (
        "files__write_file", "files", {"path": "note.txt", "content": "hello"})
    time.sleep(0.5)
    assert not (folder / "note.txt").exists() and len(fake.streamed) == 1, "nothing runs before the visitor decides"
    assert answerer.decide("alice", cid, pending.id, approve=True)
    assert live.done.wait(20)
    assert (folder / "note.txt").read_text() == "hello"
    answer = store.messages("alice", cid)[-1]
    assert answer.content == "Tool results: files__write_file = Successfully wrote to note.txt"
    assert answer.facts.tool_steps[0].get("declined") is None and answer.facts.error_kind is None


def test_deny_tells_the_model_and_the_tool_does_not_run(fake, store, answerer, hub, folder):
    cid, live = start(fake, store, answerer, hub, WRITE)
    assert answerer.decide("alice", cid, waiting_call(live).id, approve=False)
    assert live.done.wait(20)
    assert not (folder / "note.txt").exists()
    assert tool_message(fake)["content"] == "The user declined to run files__write_file."
    [step] = store.messages("alice", cid)[-1].facts.tool_steps
    assert step["declined"] == "denied" and step["error"] is None


def test_no_decision_in_time_is_a_deny_with_a_note(fake, store, hub, folder):
    answerer = Answerer(store, approval_timeout_s=0.5)
    try:
        cid, live = start(fake, store, answerer, hub, WRITE)
        waiting_call(live)
        assert live.done.wait(20)
    finally:
        answerer.close()
    assert not (folder / "note.txt").exists()
    assert "did not answer" in tool_message(fake)["content"] and "not run" in tool_message(fake)["content"]
    assert store.messages("alice", cid)[-1].facts.tool_steps[0]["declined"] == "timed_out"


def test_only_the_answers_owner_decides_and_only_the_call_waiting(fake, store, answerer, hub, folder):
    cid, live = start(fake, store, answerer, hub, WRITE)
    pending = waiting_call(live)
    assert not answerer.decide("mallory", cid, pending.id, approve=True)
    assert not answerer.decide("alice", cid, "another-call", approve=True)
    time.sleep(0.3)
    assert live.pending == pending and not (folder / "note.txt").exists()
    answerer.stop("alice", cid)  # Stop while waiting ends the answer, and nothing runs
    assert live.done.wait(10)
    assert not (folder / "note.txt").exists() and len(fake.streamed) == 1
    answer = store.messages("alice", cid)[-1]
    assert answer.facts.error_kind == "stopped" and live.pending is None


def test_a_read_only_tool_runs_without_asking(fake, store, answerer, hub, folder):
    (folder / "a.txt").write_text("alpha")
    cid, live = start(fake, store, answerer, hub, 'Read [[files__read_file {"path": "a.txt"}]]')
    assert live.done.wait(20)
    assert store.messages("alice", cid)[-1].content == "Tool results: files__read_file = alpha"


def test_the_host_lists_tools_that_ask_first(fake, store, answerer, hub, folder):
    listed = {tool.name: tool.asks_first for tool in hub.tools({"listed", "careful"})}
    assert listed["listed__shout"] and listed["listed__write_file"] and not listed["listed__add"]
    assert all(asks for name, asks in listed.items() if name.startswith("careful__"))
    (folder / "a.txt").write_text("alpha")
    cid, live = start(fake, store, answerer, hub, 'Read [[careful__read_file {"path": "a.txt"}]]', servers=("careful",))
    assert waiting_call(live).tool == "careful__read_file"
    assert answerer.decide("alice", cid, live.pending.id, approve=True) and live.done.wait(20)
    assert store.messages("alice", cid)[-1].content == "Tool results: careful__read_file = alpha"


def test_the_approve_entry_is_checked():
    [config] = parse_config(json.dumps({"mcpServers": {"x": {"command": "srv", "approve": ["a", "b"]}}}))
    assert config.asks_first("a") and not config.asks_first("c")
    [every] = parse_config(json.dumps({"mcpServers": {"x": {"url": "https://mcp.example.com", "approve": "all"}}}))
    assert every.asks_first("anything")
    for bad in ("some", ["a", 3], {"a": True}):
        with pytest.raises(McpConfigError, match="approve"):
            parse_config(json.dumps({"mcpServers": {"x": {"command": "srv", "approve": bad}}}))


def test_a_loop_nobody_can_approve_declines(fake, hub, folder):
    toolbox = Toolbox(hub.tools({"files"}))
    plan = build_request([Message("user", WRITE)], ChatOptions("dashscope", "qwen-plus"), QWEN_PLUS, DASHSCOPE,
                         tools=toolbox.schemas())
    *_, turn = run_turn_with_tools(Connection(DASHSCOPE, fake.base_url, GOOD_KEY), plan, toolbox)
    assert turn.tool_steps[0].declined == "denied" and not (folder / "note.txt").exists()


# --- the tools' schemas count ----------------------------------------------------------------------------------


def schemas_tokens(toolbox):
    return schema_tokens(toolbox.schemas(), rough_count)


def test_tool_schemas_count_in_the_context_plan():
    toolbox = Toolbox(builtin_tools(["calculator", "current_time", "fetch_page"]))
    thread = [Message("user", "hello there")]
    without = plan_context(thread, ContextSettings(), "persona", 10_000, rough_count)
    with_tools = plan_context(thread, ContextSettings(), "persona", 10_000, rough_count,
                              tool_tokens=schemas_tokens(toolbox))
    assert with_tools.input_tokens - without.input_tokens == schemas_tokens(toolbox) > 100
    assert with_tools.explain()["tool_tokens"] == schemas_tokens(toolbox)


def test_tool_schemas_leave_less_room_for_the_history():
    thread = [Message("user" if i % 2 == 0 else "assistant", f"turn {i} " + "word " * 70) for i in range(9)]
    everything = plan_context(thread, ContextSettings(), "", 1_000, rough_count)
    assert everything.input_tokens <= 1_000 < everything.input_tokens + 400
    squeezed = plan_context(thread, ContextSettings(), "", 1_000, rough_count, tool_tokens=400)
    assert len(squeezed.sent) < len(everything.sent) and squeezed.input_tokens <= 1_000


def test_an_answers_context_report_counts_its_tools(fake, store, answerer):
    toolbox = Toolbox(builtin_tools(["calculator", "current_time"]))
    counted = {}
    for tools in (None, toolbox):
        cid = store.create_conversation("alice", "hi")
        store.append("alice", cid, Message("user", "hi"))
        setup = TurnSetup(ChatOptions("dashscope", "qwen-plus"), Connection(DASHSCOPE, fake.base_url, GOOD_KEY),
                          QWEN_PLUS, rough_count, ContextSettings(), tools=tools)
        assert answerer.start("alice", cid, setup).done.wait(20)
        counted[tools is None] = store.messages("alice", cid)[-1].facts.context["input_tokens"]
    assert counted[False] - counted[True] == schemas_tokens(toolbox)


def test_quota_admission_counts_the_tool_schemas(store):
    toolbox = Toolbox(builtin_tools(["calculator", "current_time", "fetch_page"]))
    plan = build_request([Message("user", "hi")], ChatOptions("dashscope", "qwen-plus"), QWEN_PLUS, DASHSCOPE,
                         tools=toolbox.schemas())
    bare = {key: value for key, value in plan.kwargs.items() if key != "tools"}
    assert input_estimate(plan.kwargs, rough_count) - input_estimate(bare, rough_count) == schemas_tokens(toolbox)
    meter = Meter(Quotas(store, QuotaLimits(tokens_per_day=100_000)), Payer("alice", None))
    admitted = meter.admit_request(plan.kwargs, QWEN_PLUS, rough_count)
    assert admitted.input_tokens == input_estimate(plan.kwargs, rough_count)
