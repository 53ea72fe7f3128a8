"""DashScope's search with its sources (issue 31): a search goes over DashScope's own protocol (atri.dashscope_native)
behind the same request builder, chunk parser and saved facts; its sources are listed and linked, its searches
counted and billed; base URLs of 2026 (workspace domains) lead to the right endpoint. Against the fake's native
endpoint (tests/fake_provider.py: serve_native)."""
import re

import pytest

from atri.calls import run_turn, transport_for
from atri.client import CHAT_COMPLETIONS
from atri.dashscope_native import DASHSCOPE_NATIVE, NativeReader, native_body, native_url, searches_natively
from atri.errors import ChatError
from atri.messages import ChatOptions, Message
from atri.pricing import price_table, request_cost
from atri.providers import READ_PAGES, catalogue
from atri.request import build_request
from atri.settings import Connection, Settings
from atri.websearch import MAX_SOURCES, MAX_TITLE_CHARS
from tests.conftest import new_app
from tests.fake_provider import GOOD_KEY, NATIVE_MODERATION, NATIVE_RATE_LIMITED, SEARCH_RESULTS, Fault, compatible_url, native_error
from tests.test_app import all_text, send

DASHSCOPE = catalogue()["dashscope"]
WORKSPACE = "https://ws-1a2b3c.ap-southeast-1.maas.aliyuncs.com/compatible-mode/v1"


def plan(question="What is new today?", model="qwen3-max", history=(), **options):
    chosen = ChatOptions("dashscope", model, web_search=True, **options)
    return build_request([*history, Message("user", question)], chosen, DASHSCOPE.model(model), DASHSCOPE)


def native_requests(fake):
    return [request for request in fake.requests if "input" in request]


@pytest.fixture
def conn(fake):
    return Connection(DASHSCOPE, compatible_url(fake), GOOD_KEY)


# --- where the request goes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("base_url, expected", [
    ("https://dashscope.aliyuncs.com/compatible-mode/v1",
     "https://dashscope.aliyuncs.com/api/v1/services/aigc/text-generation/generation"),
    ("https://dashscope-intl.aliyuncs.com/compatible-mode/v1/",
     "https://dashscope-intl.aliyuncs.com/api/v1/services/aigc/text-generation/generation"),
    (WORKSPACE, "https://ws-1a2b3c.ap-southeast-1.maas.aliyuncs.com/api/v1/services/aigc/text-generation/generation"),
    ("https://llm-x.cn-beijing.maas.aliyuncs.com/compatible-mode/v1?x=1",
     "https://llm-x.cn-beijing.maas.aliyuncs.com/api/v1/services/aigc/text-generation/generation"),
    ("https://gateway.example/qwen/compatible-mode/v1",
     "https://gateway.example/qwen/api/v1/services/aigc/text-generation/generation"),
    ("https://api.openai.com/v1", None),
    ("http://127.0.0.1:8000/v1", None),
    ("ftp://dashscope.aliyuncs.com/compatible-mode/v1", None),
    ("not a url", None),
])
def test_the_native_endpoint_is_derived_from_any_compatible_mode_base_url(base_url, expected):
    assert native_url(base_url) == expected


def test_a_workspace_base_url_is_accepted_and_its_searches_go_native():
    settings = Settings({"DASHSCOPE_API_KEY": "k", "DASHSCOPE_BASE_URL": WORKSPACE + "/"})
    connection = settings.connection(DASHSCOPE)
    assert connection.base_url == WORKSPACE
    assert transport_for(connection, plan().kwargs) is DASHSCOPE_NATIVE
    assert transport_for(connection, build_request([Message("user", "hi")], ChatOptions("dashscope", "qwen3-max"),
                                                   DASHSCOPE.model("qwen3-max"), DASHSCOPE).kwargs) is CHAT_COMPLETIONS


def test_only_searches_of_a_flagged_provider_with_text_messages_go_native(fake):
    assert not searches_natively(Connection(DASHSCOPE, fake.base_url, GOOD_KEY), plan().kwargs), "no compatible-mode path"
    openai_like = Connection(catalogue()["custom"], compatible_url(fake), GOOD_KEY)
    assert not searches_natively(openai_like, plan().kwargs)
    pictured = plan(model="qwen3.5-plus", history=[Message("user", "see", images=["https://img.example/a.png"])])
    assert not searches_natively(Connection(DASHSCOPE, compatible_url(fake), GOOD_KEY), pictured.kwargs)
    assert "note_search_sources_text_only" in pictured.notes


def test_the_same_request_builder_makes_the_native_body():
    kwargs = plan(thinking=True, thinking_budget=100, temperature=0.5).kwargs | {"max_tokens": 500}
    body = native_body(kwargs)
    assert body["model"] == "qwen3-max" and body["input"] == {"messages": kwargs["messages"]}
    parameters = body["parameters"]
    assert parameters | {} == {**parameters, "result_format": "message", "incremental_output": True,
                               "enable_thinking": True, "thinking_budget": 100, "temperature": 0.5, "max_tokens": 500,
                               "enable_search": True}
    assert parameters["search_options"] == {"forced_search": True, "enable_source": True, "enable_citation": True,
                                            "citation_format": "[ref_<number>]", "search_strategy": "agent"}
    assert "stream" not in parameters and "stream_options" not in parameters and "extra_body" not in parameters


def test_search_and_read_pages_asks_for_agent_max_where_the_catalogue_allows():
    assert plan(model="qwen3.5-plus", read_pages=True).kwargs["extra_body"]["search_options"]["search_strategy"] \
        == READ_PAGES
    thinking = plan(read_pages=True, thinking=True).kwargs["extra_body"]["search_options"]
    assert thinking["search_strategy"] == READ_PAGES
    quick = plan(read_pages=True)  # qwen3-max reads pages only while thinking
    assert quick.kwargs["extra_body"]["search_options"]["search_strategy"] == "agent"
    assert "note_read_pages_needs_thinking" in quick.notes
    assert "search_strategy" not in plan(model="qwen-plus", read_pages=True).kwargs["extra_body"]["search_options"]


# --- reading the native stream -------------------------------------------------------------------------------


def event(text="", reasoning="", finish="null", **output):
    return {"output": {"choices": [{"message": {"role": "assistant", "content": text, "reasoning_content": reasoning},
                                    "finish_reason": finish}], **output},
            "usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12,
                      "plugins": {"search": {"count": 1, "strategy": "agent"}}}, "request_id": "r-1"}


def test_native_events_become_chat_completions_chunks():
    reader = NativeReader()
    info = {"search_results": SEARCH_RESULTS}
    first = reader.read(event(reasoning="hmm", search_info=info))
    assert first["choices"][0] == {"index": 0, "delta": {"role": "assistant", "content": "", "reasoning_content": "hmm"},
                                   "finish_reason": None}
    assert first["search_info"] == info and "usage" not in first, "usage comes whole, with the last event"
    assert "search_info" not in reader.read(event(text="Hi", search_info=info)), "a repeated list is not passed on"
    last = reader.read(event(finish="stop"))
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["usage"]["prompt_tokens"] == 5 and last["usage"]["plugins"]["search"]["count"] == 1


@pytest.mark.parametrize("code, kind", [("InvalidApiKey", "auth"), ("Throttling.RateQuota", "rate_limit"),
                                        ("Throttling.AllocationQuota", "quota"), ("DataInspectionFailed", "moderation"),
                                        ("Something.New", "stream_error")])
def test_a_native_error_event_is_named_as_the_compatible_ones_are(code, kind):
    with pytest.raises(ChatError) as raised:
        NativeReader().read(native_error(code, "Allocated quota exceeded" if "Allocation" in code else "no"))
    assert raised.value.kind == kind and code in raised.value.detail


def test_what_the_provider_sends_is_bounded_and_only_web_links_survive():
    flood = [{"index": n, "title": "T" * 10_000, "url": f"https://{n}.example/", "site_name": "S" * 10_000}
             for n in range(1, 500)] + [{"index": 999, "title": "bad", "url": "javascript:alert(1)"}]
    from atri.stream import ChunkParser, SearchResults
    from atri.turn import Turn

    turn = Turn("qwen3-max", {}, [])
    for _ in range(3):  # the list comes again and again: it is kept once, and never grows past MAX_SOURCES
        for item in ChunkParser().feed(NativeReader().read(event(search_info={"search_results": flood}))):
            if isinstance(item, SearchResults):
                turn.apply(item)
    assert len(turn.sources) == MAX_SOURCES
    assert max(len(s["title"]) for s in turn.sources) == MAX_TITLE_CHARS
    assert all(s["url"].startswith("https://") for s in turn.sources)


# --- against the fake's native endpoint ----------------------------------------------------------------------


def test_a_searched_answer_carries_sources_marks_count_and_fee(fake, conn):
    turn = list(run_turn(conn, plan()))[-1]
    assert turn.error is None and turn.finish_reason == "stop"
    sent = native_requests(fake)[-1]
    assert sent["parameters"]["search_options"]["enable_source"] and sent["parameters"]["incremental_output"]
    assert [s["url"] for s in turn.sources] == [s["url"] for s in SEARCH_RESULTS]
    assert "[ref_1]" in turn.content and "[ref_2]" in turn.content and turn.web_searches == 1
    facts = Message.from_dict(turn.to_message(ChatOptions("dashscope", "qwen3-max", web_search=True)).to_dict()).facts
    price = price_table()["qwen3-max"]
    assert facts.web_searches == 1 and price.search_fee > 0
    assert request_cost(price, facts.usage, searches=1) == pytest.approx(
        request_cost(price, facts.usage) + price.search_fee)


def test_thinking_and_search_stream_together(fake, conn):
    seen = [(bool(t.sources), bool(t.reasoning), bool(t.content), t.web_searches) for t in run_turn(conn, plan(thinking=True))]
    first_reasoning, first_answer = seen.index((True, True, False, None)), seen.index((True, True, True, None))
    assert first_reasoning < first_answer, "the sources came with the first reasoning, before the answer"
    assert not any(has_content for _, _, has_content, _ in seen[:first_answer])
    last = list(run_turn(conn, plan(thinking=True)))[-1]
    assert last.reasoning.startswith("Let me think") and "[ref_1]" in last.content and last.web_searches == 1
    assert native_requests(fake)[-1]["parameters"]["enable_thinking"] is True


def test_a_skipped_search_is_counted_as_none(fake, conn):
    fake.script(Fault("no_search"))
    turn = list(run_turn(conn, plan()))[-1]
    assert turn.error is None and turn.web_searches == 0 and turn.sources == [] and "[ref_" not in turn.content


@pytest.mark.parametrize("body, status, kind", [
    (native_error("InvalidApiKey", "Invalid API-key provided."), 401, "auth"),
    (NATIVE_RATE_LIMITED, 429, "rate_limit"), (NATIVE_MODERATION, 400, "moderation")])
def test_native_http_errors_are_named(fake, conn, body, status, kind):
    fake.script(*[Fault("status", status=status, body=body)] * 3)  # the SDK retries a 429 twice
    turn = list(run_turn(conn, plan()))[-1]
    assert turn.error is not None and turn.error.kind == kind and body["code"] in turn.error.detail


def test_an_error_event_mid_stream_keeps_what_came_and_says_so(fake, conn):
    refusal = native_error("DataInspectionFailed", "Output data may contain inappropriate content.")
    fake.script(Fault("stream_error", after_chunks=3, body=refusal))
    turn = list(run_turn(conn, plan()))[-1]
    assert turn.error.kind == "moderation" and turn.sources and turn.finish_reason is None


def test_a_wrong_key_on_the_native_endpoint_is_an_auth_error(fake):
    turn = list(run_turn(Connection(DASHSCOPE, compatible_url(fake), "sk-wrong"), plan()))[-1]
    assert turn.error.kind == "auth" and "InvalidApiKey" in turn.error.detail


# --- on the chat page ------------------------------------------------------------------------------------------


@pytest.fixture
def native_app(dashscope_env, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("DASHSCOPE_BASE_URL", compatible_url(dashscope_env))
    st.cache_resource.clear()
    st.cache_data.clear()
    at = new_app()
    at.toggle(key="tool::web_search").set_value(True).run()
    return at


def test_the_page_lists_sources_links_marks_and_bills_the_search(native_app, dashscope_env):
    assert "tool::read_pages" in [toggle.key for toggle in native_app.toggle], "qwen3-max offers search and read pages"
    send(native_app, "What is new today?")
    text = all_text(native_app)
    assert "[[1]](<https://news.example.com/atri-tools>)" in text and "[[2]](<https://blog.example.org/katex>)" in text
    assert "1. [Atri news:\u200b tools arrive](<https://news.example.com/atri-tools>) · Example News" in text
    assert "2. [KaTeX in chat apps](<https://blog.example.org/katex>) · Example Blog" in text
    assert "Searched the web (2 results)" in text
    facts = next(c.value for c in native_app.caption if c.value.startswith("qwen3-max"))
    assert "1 web searches" in facts
    cost = float(re.search(r"≈ ¥([0-9.]+)", facts).group(1))
    fee = price_table()["qwen3-max"].search_fee
    assert fee <= cost < fee + 0.002, "the search fee joins the tokens' cost (a few hundred tokens: under ¥0.002)"


def test_a_second_turn_resends_no_search_results(native_app, dashscope_env):
    send(native_app, "What is new today?")
    send(native_app, "And tomorrow?")
    first, second = native_requests(dashscope_env)[-2:]
    history = second["input"]["messages"]
    sent_text = repr(history)
    assert [m["role"] for m in history if m["role"] != "system"] == ["user", "assistant", "user"]
    assert all(set(m) == {"role", "content"} for m in history)
    assert not any(source["url"] in sent_text or source["title"] in sent_text for source in SEARCH_RESULTS)
    assert "search_info" not in sent_text and first["parameters"]["enable_search"] is True


def test_a_skipped_search_says_no_search_ran(native_app, dashscope_env):
    dashscope_env.script(Fault("no_search"))
    send(native_app, "hello there")
    text = all_text(native_app)
    assert "No web search ran this time" in text and "Sources" not in text
    assert "web searches" not in next(c.value for c in native_app.caption if c.value.startswith("qwen3-max"))


def test_a_native_protocol_error_shows_the_friendly_message(native_app, dashscope_env):
    dashscope_env.script(*[Fault("status", status=429, body=NATIVE_RATE_LIMITED)] * 3)
    send(native_app, "What is new today?")
    assert "Too many requests (429" in all_text(native_app)


def test_thinking_with_search_shows_both_on_the_page(native_app, dashscope_env):
    native_app.toggle(key="thinking::qwen3-max").set_value(True).run()
    send(native_app, "What is new today?")
    assert any(e.label.startswith("Thought for") for e in native_app.expander)
    assert "[[1]](<https://news.example.com/atri-tools>)" in all_text(native_app)
    assert native_requests(dashscope_env)[-1]["parameters"]["enable_thinking"] is True


def test_the_async_face_searches_natively_too(fake, conn):
    import asyncio

    from atri.calls import asend

    turn = asyncio.run(asend(conn, plan()))
    assert turn.error is None and turn.web_searches == 1 and len(turn.sources) == 2 and native_requests(fake)


def test_the_search_step_says_what_the_search_did():
    from atri.ui.steps import search_step_label

    assert search_step_label("en", None, 0) is None
    assert "Searching the web" in search_step_label("en", None, 0, running=True)
    assert "Searched the web (2 results)" in search_step_label("en", 1, 2)
    assert "No web search ran" in search_step_label("en", 0, 0)
    assert "已联网搜索（2 条结果）" in search_step_label("zh", 1, 2)


def test_an_error_sent_as_an_sse_event_with_its_http_status_is_read():
    from atri.client import _provider_reason

    text = 'id:1\nevent:error\n:HTTP_STATUS/401\ndata:{"code":"InvalidApiKey","message":"Invalid API-key provided.","request_id":"x"}'
    assert _provider_reason(text, "fallback") == "InvalidApiKey — Invalid API-key provided."
    assert _provider_reason("plain words", "fallback") == "fallback"
