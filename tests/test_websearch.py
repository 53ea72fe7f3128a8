"""Web search (issue 11): DashScope's request fields, sources read from the stream and linked from citation marks,
and the web_search tool over the host's SearXNG for other providers, whose results become the answer's sources."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from markdown_it import MarkdownIt

from atri.answers import Answerer, TurnSetup
from atri.calls import run_turn
from atri.context import ContextSettings
from atri.export import to_markdown
from atri.messages import ChatOptions, Message
from atri.providers import catalogue
from atri.request import build_request
from atri.settings import Connection
from atri.store import Store
from atri.stream import ChunkParser, SearchResults
from atri.tokens import rough_count
from atri.tool_loop import run_turn_with_tools
from atri.tools import Toolbox, web_search_tool
from atri.websearch import MAX_SOURCES, SearchHit, hits_for_model, link_citations, number_hits, sources_in, sources_markdown
from tests.fake_provider import GOOD_KEY, SEARCH_RESULTS

DASHSCOPE = catalogue()["dashscope"]


def search_plan(model="qwen-plus", provider=DASHSCOPE, tools=None):
    options = ChatOptions(provider.id, model, web_search=True)
    return build_request([Message("user", "What is new today?")], options, provider.model(model), provider, tools=tools)


def test_dashscope_search_sends_enable_search_and_its_options():
    body = search_plan().kwargs["extra_body"]
    assert body["enable_search"] is True
    # qwen-plus: the 2026 docs name no strategy for it ("turbo" is gone), so none is sent
    assert body["search_options"] == {"forced_search": True, "enable_source": True, "enable_citation": True,
                                      "citation_format": "[ref_<number>]"}
    assert search_plan("qwen3-max").kwargs["extra_body"]["search_options"]["search_strategy"] == "agent"
    assert not any("turbo" in model.web_search for model in DASHSCOPE.models)


def test_a_model_without_search_gets_a_note_and_no_search_fields():
    plan = search_plan("qwen3-vl-plus")
    assert "enable_search" not in plan.kwargs.get("extra_body", {}) and "note_web_search_unavailable" in plan.notes
    openai = catalogue()["openai"]
    with_tool = search_plan("gpt-4.1-mini", openai, tools=[web_search_tool("http://searx.invalid").schema()])
    assert "note_web_search_unavailable" not in with_tool.notes and with_tool.kwargs["tools"]


def test_sources_in_the_documented_shape_are_read_and_cleaned():
    chunk = {"output": {"search_info": {"search_results": [
        {"index": 1, "title": "A", "url": "https://a.example/"}, {"index": 2, "title": "evil", "url": "javascript:alert(1)"},
        {"title": "no index", "url": "http://c.example/"}, "junk"]}}}
    sources = sources_in(chunk)
    assert [(s["index"], s["url"]) for s in sources] == [(1, "https://a.example/"), (3, "http://c.example/")]
    assert sources_in({"choices": []}) is None
    events = ChunkParser().feed({"search_info": {"search_results": SEARCH_RESULTS}, "choices": []})
    assert isinstance(events[0], SearchResults) and len(events[0].sources) == 2


def test_citation_marks_link_to_their_sources_outside_code():
    sources = [{"index": 1, "url": "https://a.example/x"}, {"index": 2, "url": "https://b.example/"}]
    text = "Fact [1] and [ref_2], not [3], `code [1]`, a [link](http://x) and\n```\narr[1]\n```\n"
    linked = link_citations(text, sources)
    assert "[[1]](<https://a.example/x>)" in linked and "[[2]](<https://b.example/>)" in linked
    html = MarkdownIt("commonmark").render(linked)
    assert '<a href="https://a.example/x">[1]</a>' in html and '<a href="https://b.example/">[2]</a>' in html
    assert "not [3]" in linked and "`code [1]`" in linked and "arr[1]" in linked and "[link](http://x)" in linked
    assert link_citations(text, []) == text
    listed = sources_markdown([{"index": 1, "title": "**A**", "url": "https://a.example/", "site_name": "Site"}])
    assert listed == "1. [\\*\\*A\\*\\*](<https://a.example/>) · Site"


def test_the_fake_dashscope_answer_carries_its_sources_into_the_turn(fake):
    conn = Connection(DASHSCOPE, fake.base_url, GOOD_KEY)
    turn = list(run_turn(conn, search_plan()))[-1]
    assert fake.streamed[0]["enable_search"] is True and fake.streamed[0]["search_options"]["enable_citation"]
    assert [source["url"] for source in turn.sources] == [s["url"] for s in SEARCH_RESULTS]
    assert "[ref_1]" in turn.content and "[ref_2]" in turn.content
    message = Message.from_dict(turn.to_message(ChatOptions("dashscope", "qwen-plus", web_search=True)).to_dict())
    assert message.facts.sources[0]["title"] == "Atri news: tools arrive" and message.options.web_search


SEARXNG_RESULTS = {  # query -> what the fake SearXNG finds (the same page may come back from two searches)
    "atri": [{"title": "Result one", "url": "https://one.example/", "content": "first"},
             {"title": "Bad", "url": "file:///etc/passwd", "content": "no"},
             {"title": "Result two", "url": "https://two.example/", "content": "second"}],
    "katex": [{"title": "Result two", "url": "https://two.example/", "content": "second"},
              {"title": "Result three", "url": "https://three.example/", "content": "third"},
              {"title": "Result three again", "url": "https://three.example/", "content": "third"}],
}


@pytest.fixture
def searxng():
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            query = parse_qs(urlsplit(self.path).query)
            assert query["format"] == ["json"]
            body = json.dumps({"results": SEARXNG_RESULTS.get(query["q"][0], [])}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def searching_plan(conn, box, question):
    options = ChatOptions("custom", "some-model", web_search=True, tools=["web_search"])
    return build_request([Message("user", question)], options, conn.provider.model("some-model"), conn.provider,
                         tools=box.schemas())


def test_other_providers_search_with_the_web_search_tool_over_searxng(fake, searxng):
    box = Toolbox([web_search_tool(searxng)])
    conn = Connection(catalogue()["custom"], fake.base_url, GOOD_KEY)
    turn = list(run_turn_with_tools(conn, searching_plan(conn, box, 'news? [[web_search {"query": "atri"}]]'), box))[-1]
    assert "enable_search" not in fake.streamed[0] and turn.tool_steps[0].name == "web_search"
    assert turn.tool_steps[0].result == ("[1] Result one\nhttps://one.example/\nfirst\n\n"
                                         "[2] Result two\nhttps://two.example/\nsecond")
    assert turn.content.startswith("Tool results: web_search = [1] Result one")
    assert turn.sources == [{"index": 1, "title": "Result one", "url": "https://one.example/"},
                            {"index": 2, "title": "Result two", "url": "https://two.example/"}]


def test_two_searches_number_their_results_as_one_list_without_repeats(fake, searxng):
    box = Toolbox([web_search_tool(searxng)])
    conn = Connection(catalogue()["custom"], fake.base_url, GOOD_KEY)
    question = 'news? [[web_search {"query": "atri"}]] [[web_search {"query": "katex"}]]'
    turn = list(run_turn_with_tools(conn, searching_plan(conn, box, question), box))[-1]
    sent_back = [m["content"] for m in fake.streamed[-1]["messages"] if m["role"] == "tool"]
    assert sent_back[1] == "[2] Result two\nhttps://two.example/\nsecond\n\n[3] Result three\nhttps://three.example/\nthird"
    assert [(s["index"], s["url"]) for s in turn.sources] == [
        (1, "https://one.example/"), (2, "https://two.example/"), (3, "https://three.example/")]


def test_search_hits_are_numbered_after_the_sources_already_cited_and_capped():
    cited = [{"index": 4, "title": "Provider's", "url": "https://p.example/"}]
    hits = [SearchHit("P", "https://p.example/"), SearchHit("New", "https://new.example/"),
            SearchHit("New again", "https://new.example/")]
    assert [(number, hit.title) for number, hit in number_hits(cited, hits)] == [(4, "P"), (5, "New")]
    full = [{"index": n, "title": "", "url": f"https://{n}.example/"} for n in range(1, MAX_SOURCES + 1)]
    assert number_hits(full, [SearchHit("Late", "https://late.example/"), SearchHit("Old", "https://1.example/")]) \
        == [(1, SearchHit("Old", "https://1.example/"))]
    assert hits_for_model([]) == "No results."


def test_an_answer_that_searched_is_saved_with_its_sources(fake, searxng, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'atri.db'}")
    answerer = Answerer(store)
    custom = catalogue()["custom"]
    try:
        question = 'What is new? [[web_search {"query": "atri"}]]'
        cid = store.create_conversation("alice", question)
        store.append("alice", cid, Message("user", question))
        setup = TurnSetup(ChatOptions("custom", "some-model", web_search=True, tools=["web_search"]),
                          Connection(custom, fake.base_url, GOOD_KEY), custom.model("some-model"), rough_count,
                          ContextSettings(), tools=Toolbox([web_search_tool(searxng)]))
        assert answerer.start("alice", cid, setup).done.wait(20)
        answer = store.messages("alice", cid)[-1]
        assert answer.facts.error_kind is None and "[1] Result one" in answer.content
        assert answer.facts.sources == [{"index": 1, "title": "Result one", "url": "https://one.example/"},
                                        {"index": 2, "title": "Result two", "url": "https://two.example/"}]
        assert "1. [Result one](https://one.example/)" in to_markdown("t", store.messages("alice", cid))
    finally:
        answerer.close()
