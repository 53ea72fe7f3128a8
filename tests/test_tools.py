"""Tools (issue 11): calls streamed in pieces, run, sent back, repeated up to a limit; the built-ins; fetch's guard.

The real openai SDK against the fake provider over real HTTP; the fetch tool against real local servers.
"""
import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from atri.messages import ChatOptions, Message
from atri.providers import catalogue
from atri.request import build_request
from atri.settings import Connection
from atri.stream import ChunkParser, Finish, ToolCallDelta, ToolCallsReady
from atri.tool_loop import MAX_STEPS, run_turn_with_tools
from atri.tools import CALCULATOR, CURRENT_TIME, FETCH_PAGE, Tool, Toolbox, ToolCall, builtin_tools, calculate, now_in
from atri.turn import response_record
from atri.webfetch import FetchRefused, fetch_page
from tests.fake_provider import GOOD_KEY, Fault, error_body

DASHSCOPE = catalogue()["dashscope"]


def tool_delta(index, *, id=None, name=None, arguments=None):
    call = {"index": index, "function": {}}
    if id:
        call |= {"id": id, "type": "function"}
    if name is not None:
        call["function"]["name"] = name
    if arguments is not None:
        call["function"]["arguments"] = arguments
    return {"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]}


def test_a_tool_call_streamed_in_pieces_is_put_together():
    parser = ChunkParser()
    events = []
    for chunk in [tool_delta(0, id="call_1", name="calculator", arguments=""),
                  tool_delta(0, arguments='{"expr'), tool_delta(0, arguments='ession": "2'),
                  tool_delta(0, arguments='+3"}'),
                  {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}]:
        events += parser.feed(chunk)
    assert [e for e in events if isinstance(e, ToolCallDelta)][1] == ToolCallDelta(0, "calculator", '{"expr')
    ready = next(e for e in events if isinstance(e, ToolCallsReady))
    assert ready.calls == (ToolCall("call_1", "calculator", '{"expression": "2+3"}'),)
    assert events[-1] == Finish("tool_calls") and events.index(ready) == len(events) - 2


def test_two_parallel_calls_are_kept_apart_by_index_even_interleaved():
    parser = ChunkParser()
    chunks = [tool_delta(0, id="a", name="calculator", arguments='{"expression":'),
              tool_delta(1, id="b", name="current_time", arguments='{"time'),
              tool_delta(0, arguments=' "6*7"}'), tool_delta(1, arguments='zone": "UTC"}'),
              {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}]
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    ready = next(e for e in events if isinstance(e, ToolCallsReady))
    assert ready.calls == (ToolCall("a", "calculator", '{"expression": "6*7"}'),
                           ToolCall("b", "current_time", '{"timezone": "UTC"}'))


def test_a_name_repeated_in_every_piece_is_kept_once():
    parser = ChunkParser()
    for piece in ['{"expression":', ' "1"}']:
        parser.feed(tool_delta(0, id="a", name="calculator", arguments=piece))
    [ready] = [e for e in parser.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
               if isinstance(e, ToolCallsReady)]
    assert ready.calls == (ToolCall("a", "calculator", '{"expression": "1"}'),)


def test_calls_without_an_index_are_told_apart_by_id():
    parser = ChunkParser()
    chunks = [{"choices": [{"index": 0, "delta": {"tool_calls": [
        {"id": "x", "function": {"name": "calculator", "arguments": '{"expression": "1"}'}},
        {"id": "y", "function": {"name": "calculator", "arguments": '{"expression": "2"}'}}]}, "finish_reason": "stop"}]}]
    ready = next(e for e in parser.feed(chunks[0]) if isinstance(e, ToolCallsReady))
    assert [call.id for call in ready.calls] == ["x", "y"]


def test_the_calculator_is_safe_and_exact():
    assert calculate("2**10 / 4") == "256" and calculate("sqrt(16) + pi") .startswith("7.14159")
    assert calculate("3 ^ 2") == "9"  # what people mean by ^
    for hostile in ["__import__('os').system('id')", "(1).__class__", "open('/etc/passwd')", "9**9**9**9",
                    "factorial(10**7)", "2**4000000", "'a' * 10**9"]:
        with pytest.raises(Exception) as refused:
            calculate(hostile)
        assert "ToolError" in type(refused.value).__name__


def test_the_time_is_in_the_visitors_zone():
    moment = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    shanghai = json.loads(now_in("Asia/Shanghai", moment))
    assert shanghai["datetime"] == "2026-01-01T20:00:00+08:00" and shanghai["weekday"] == "Thursday"
    assert json.loads(now_in("Not/AZone", moment))["timezone"] == "UTC"


def test_a_tool_that_raises_becomes_an_error_the_model_reads():
    def broken(arguments):
        raise RuntimeError("disk on fire")

    box = Toolbox([Tool("broken", "always fails", {"type": "object"}, broken)])
    step = box.run(ToolCall("c1", "broken", "{}"))
    assert step.error == "RuntimeError: disk on fire" and step.result == ""
    assert box.run(ToolCall("c2", "missing", "{}")).error == "there is no tool named 'missing'"
    assert "not valid JSON" in box.run(ToolCall("c3", "broken", "{oops")).error


# --- the loop, against the fake provider ----------------------------------------------------------------

def plan_for(fake, question, names=(CALCULATOR, CURRENT_TIME), model="qwen-plus"):
    box = Toolbox(builtin_tools(names, "Asia/Shanghai"))
    options = ChatOptions("dashscope", model, tools=list(names))
    plan = build_request([Message("user", question)], options, DASHSCOPE.model(model), DASHSCOPE, tools=box.schemas())
    return Connection(DASHSCOPE, fake.base_url, GOOD_KEY), plan, box


def run(fake, question, **kwargs):
    conn, plan, box = plan_for(fake, question, **kwargs)
    turns = list(run_turn_with_tools(conn, plan, box))
    return turns[-1]


def test_a_call_is_run_and_its_result_sent_back_as_a_tool_message(fake):
    turn = run(fake, 'What is 2+3? [[calculator {"expression": "2+3"}]]')
    assert turn.error is None and turn.finish_reason == "stop"
    assert turn.content == "Tool results: calculator = 5"
    [step] = turn.tool_steps
    assert (step.name, json.loads(step.arguments), step.result, step.error) == ("calculator", {"expression": "2+3"}, "5", None)
    first, second = fake.streamed
    assert first["tools"][0]["function"]["name"] == "calculator" and first["parallel_tool_calls"] is True
    assert second["messages"][-2]["role"] == "assistant" and second["messages"][-2]["tool_calls"][0]["id"] == step.id
    assert second["messages"][-2]["content"] == "", "a string, not null: llama.cpp's server answers 500 to null"
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": step.id, "content": "5"}
    assert turn.usage.completion_tokens >= 2 and not turn.usage.estimated  # both requests' usage, added up


def test_two_parallel_calls_are_both_run_and_answered_together(fake):
    turn = run(fake, 'Sum and time: [[calculator {"expression": "6*7"}]] [[current_time {"timezone": "UTC"}]]')
    assert [step.name for step in turn.tool_steps] == ["calculator", "current_time"]
    assert turn.content.startswith("Tool results: calculator = 42; current_time = {")
    tool_messages = [m for m in fake.streamed[-1]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == [step.id for step in turn.tool_steps]


def test_the_step_limit_ends_the_loop_with_an_answer(fake):
    turn = run(fake, "Keep calculating [[loop]]")
    assert len(turn.tool_steps) == MAX_STEPS and len(fake.streamed) == MAX_STEPS + 1
    assert fake.streamed[-1]["tool_choice"] == "none" and "note_tool_step_limit" in turn.notes
    assert turn.finish_reason == "stop" and turn.error is None and turn.content


def test_a_tool_that_raises_does_not_end_the_answer(fake):
    conn, plan, _ = plan_for(fake, "[[broken {}]]", names=())
    box = Toolbox([Tool("broken", "fails", {"type": "object", "properties": {}}, lambda a: 1 / 0)])
    plan.kwargs["tools"] = box.schemas()
    turn = list(run_turn_with_tools(conn, plan, box))[-1]
    assert turn.tool_steps[0].error == "ZeroDivisionError: division by zero"
    assert turn.content == "Tool results: broken = Error: ZeroDivisionError: division by zero" and turn.error is None


def test_a_provider_that_refuses_tools_is_asked_again_without_them(fake):
    fake.script(Fault("status", status=400, body=error_body("InvalidParameter", "tools are not supported")))
    turn = run(fake, 'Hi [[calculator {"expression": "1"}]]')
    assert turn.error is None and "note_tools_refused" in turn.notes and not turn.tool_steps
    assert "tools" not in fake.streamed[-1] and "tools" not in turn.request


def test_a_model_that_cannot_call_tools_gets_a_note_not_tools():
    model = DASHSCOPE.model("qvq-max")
    plan = build_request([Message("user", "hi")], ChatOptions("dashscope", "qvq-max", tools=[CALCULATOR]), model,
                         DASHSCOPE, tools=Toolbox(builtin_tools([CALCULATOR])).schemas())
    assert "tools" not in plan.kwargs and "note_model_no_tools" in plan.notes


def test_a_server_that_needs_tool_choice_is_sent_auto_and_the_others_are_not():
    """llama-cpp-python's function-calling chat formats offer no tool without tool_choice; vLLM refuses "auto"
    unless started for it: a catalogue flag (issue 32)."""
    from dataclasses import replace

    from atri.i18n import STRINGS

    schemas = Toolbox(builtin_tools([CALCULATOR])).schemas()
    options = ChatOptions("dashscope", "qwen-plus", tools=[CALCULATOR])
    for provider, sent in [(DASHSCOPE, None), (replace(DASHSCOPE, tool_choice_auto=True), "auto")]:
        plan = build_request([Message("user", "hi")], options, DASHSCOPE.model("qwen-plus"), provider, tools=schemas)
        assert plan.kwargs.get("tool_choice") == sent
    notes = [model.tools_note for provider in catalogue().values() for model in provider.models if model.tools_note]
    assert notes and all(note in STRINGS for note in notes), "a model's reason for no tools is a UI string"


def test_tool_steps_are_stored_with_the_answer_and_in_its_raw_record(fake):
    turn = run(fake, '[[calculator {"expression": "7*6"}]]')
    message = turn.to_message(ChatOptions("dashscope", "qwen-plus", tools=[CALCULATOR]))
    again = Message.from_dict(message.to_dict())
    assert again.facts.tool_steps[0]["result"] == "42" and again.options.tools == [CALCULATOR]
    record = response_record(again)["choices"][0]["message"]
    assert record["atri_tool_steps"][0]["name"] == "calculator"


# --- the fetch tool's guard ----------------------------------------------------------------------------

class _Server:
    """A real HTTP server on a loopback address, answering with `respond(path) -> (status, headers, body)`."""

    def __init__(self, host, respond):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                status, headers, body = respond(self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer((host, 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://{host}:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def secret_server():
    server = _Server("127.0.0.1", lambda path: (200, {"Content-Type": "text/plain"}, b"the host's secret"))
    yield server
    server.close()


def only(host):
    """A fetch policy for tests: this one loopback address stands in for the internet."""
    return lambda address: str(address) == host


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://localhost:1/",
                                 "http://[::1]/", "http://10.0.0.1/", "http://192.168.1.1/", "http://0.0.0.0/",
                                 "file:///etc/passwd", "ftp://example.com/", "http://[::ffff:127.0.0.1]/"])
def test_fetch_refuses_the_hosts_own_network(url):
    with pytest.raises(FetchRefused):
        fetch_page(url)


def test_fetch_refuses_a_live_loopback_server(secret_server):
    with pytest.raises(FetchRefused, match="refused"):
        fetch_page(secret_server.url)


@pytest.mark.parametrize("target", ["127.0.0.1", "169.254.169.254"])
def test_fetch_rechecks_every_redirect(secret_server, target):
    location = secret_server.url + "/" if target == "127.0.0.1" else "http://169.254.169.254/latest/meta-data/"
    public = _Server("127.0.0.2", lambda path: (302, {"Location": location}, b""))
    try:
        with pytest.raises(FetchRefused, match=target.replace(".", r"\.")):
            fetch_page(public.url + "/go", allowed=only("127.0.0.2"))
    finally:
        public.close()


def test_fetch_returns_a_pages_text_within_the_limits():
    html = b"<html><head><title>t</title><style>x{}</style></head><body><h1>Hello</h1><script>evil()</script>" \
           b"<p>World &amp; more</p></body></html>"
    pages = {"/": (301, {"Location": "/page"}, b""), "/page": (200, {"Content-Type": "text/html; charset=utf-8"}, html),
             "/big": (200, {"Content-Type": "text/plain"}, b"x" * 50_000)}
    server = _Server("127.0.0.2", lambda path: pages[path])
    try:
        page = fetch_page(server.url + "/", allowed=only("127.0.0.2"))
        assert page.text == "Hello\nWorld & more" and page.url.endswith("/page")
        big = fetch_page(server.url + "/big", allowed=only("127.0.0.2"), max_bytes=1000)
        assert big.truncated and len(big.text) == 1000
    finally:
        server.close()


def test_the_fetch_tool_tells_the_model_why_it_refused():
    step = Toolbox(builtin_tools([FETCH_PAGE])).run(ToolCall("c", FETCH_PAGE, '{"url": "http://169.254.169.254/"}'))
    assert "refused" in step.error and step.result == ""


def test_an_answer_with_tools_is_saved_with_its_steps(fake, tmp_path):
    from atri.answers import Answerer, TurnSetup
    from atri.context import ContextSettings
    from atri.store import Store
    from atri.tokens import rough_count

    store = Store(f"sqlite:///{tmp_path / 'atri.db'}")
    answerer = Answerer(store)
    try:
        question = 'How much? [[calculator {"expression": "12*12"}]]'
        cid = store.create_conversation("alice", question)
        store.append("alice", cid, Message("user", question))
        options = ChatOptions("dashscope", "qwen-plus", tools=[CALCULATOR])
        setup = TurnSetup(options, Connection(DASHSCOPE, fake.base_url, GOOD_KEY), DASHSCOPE.model("qwen-plus"),
                          rough_count, ContextSettings(), tools=Toolbox(builtin_tools([CALCULATOR])))
        live = answerer.start("alice", cid, setup)
        assert live.done.wait(20)
        answer = store.messages("alice", cid)[-1]
        assert answer.content == "Tool results: calculator = 144" and answer.facts.error_kind is None
        assert answer.facts.tool_steps[0]["result"] == "144" and answer.options.tools == [CALCULATOR]
        exported = store.export("alice", cid)
        assert "144" in json.dumps(exported) and '"tool_steps"' in json.dumps(exported)
    finally:
        answerer.close()


def test_the_markdown_export_shows_tool_steps_and_sources():
    from atri.export import to_markdown
    from atri.messages import AnswerFacts

    step = {"id": "c", "name": "calculator", "arguments": '{"expression": "2+2"}', "result": "4", "error": None,
            "seconds": 0.01, "round": 0}
    facts = AnswerFacts(model="qwen-plus", finish_reason="stop", tool_steps=[step],
                        sources=[{"index": 1, "title": "A", "url": "https://a.example/"}])
    text = to_markdown("t", [Message("user", "2+2?"), Message("assistant", "4 [1]", facts=facts)])
    assert "<summary>Tool calculator (0.01 s)</summary>" in text and '{"expression": "2+2"}' in text
    assert text.index("Tool calculator") < text.index("4 [1]") < text.index("1. [A](https://a.example/)")
