"""Issue 14, item 2, in a real browser: a pixel spy on loopback receives nothing when a page shows
answers, reasoning, questions, titles and imported images that point at it — until the visitor asks."""
import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.browser import IDLE, NO_CHROMIUM, chromium_available, launch, open_settings, streamlit_server
from tests.conftest import ROOT
from tests.test_browser_persistence import ANSWER_END, env_for, open_page, send, wait_for_chat_in_sidebar
from tests.test_images import png

pytestmark = pytest.mark.skipif(not chromium_available(), reason=NO_CHROMIUM)


class PixelSpy:
    """A loopback server that records every request and answers with a small PNG."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        spy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                spy.paths.append(self.path)
                body = png(16, 16)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}.png?d=secret"


@pytest.fixture
def spy():
    spy = PixelSpy()
    yield spy
    spy.server.shutdown()


def test_nothing_on_the_page_loads_an_image_by_itself(fake, database_url, spy, tmp_path):
    fake.reasoning_text = f"Thinking with a picture ![r]({spy.url('reasoning')}) in it."
    question = f"look ![q]({spy.url('question')}) and <img src=\"{spy.url('html')}\">"
    imported = {"format": "atri.conversation", "version": 1, "title": f"![t]({spy.url('title')})",
                "messages": [{"role": "user", "content": "a picture", "images": [spy.url("imported")]},
                             {"role": "assistant", "content": f"![a]({spy.url('imported-answer')})"}]}
    upload = tmp_path / "chat.json"
    upload.write_text(json.dumps(imported))
    with streamlit_server(env_for(fake, database_url)) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, app.url)
        open_settings(page)
        page.get_by_text("Thinking", exact=True).click()  # qwen3-max thinks: the reasoning carries a spy too
        page.wait_for_selector(IDLE)
        send(page, question)
        page.get_by_role("button", name="Send the text only").click()  # its picture links, for a model that cannot see
        expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text(ANSWER_END, timeout=20_000)
        wait_for_chat_in_sidebar(page)
        page.get_by_text("Thought for").first.click()
        page.get_by_text("Import a JSON conversation").first.click()
        page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(str(upload))
        expect(page.get_by_text("Imported")).to_be_visible(timeout=20_000)
        page.wait_for_selector(IDLE)
        expect(page.get_by_role("link", name="a", exact=True)).to_be_visible()  # shown as a link to click
        page.reload()
        page.wait_for_selector(IDLE, timeout=60_000)
        page.wait_for_timeout(1000)  # give a stray request time to arrive
        assert spy.paths == [], f"the page fetched {spy.paths}"

        page.get_by_role("button", name="Load images").click()  # the visitor asks: now, and only now
        expect(page.get_by_test_id("stImage")).to_have_count(1, timeout=10_000)
        page.wait_for_timeout(500)
        assert [path.split("?")[0] for path in spy.paths] == ["/imported.png"]
        browser.close()


def test_a_one_megabyte_message_is_not_sent_to_the_browser_until_asked_for(fake, database_url):
    import time

    from sqlalchemy import text

    from atri.messages import AnswerFacts, Message
    from atri.store import Store

    with streamlit_server(env_for(fake, database_url)) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, app.url)
        send(page, "start")
        expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text(ANSWER_END, timeout=20_000)
        page.wait_for_url("**?c=*")
        cid = page.url.split("c=")[1].split("&")[0]
        store = Store(database_url)
        with store.engine.connect() as connection:
            owner = connection.execute(text("SELECT owner FROM conversations WHERE id = :id"), {"id": cid}).scalar()
        huge = "这是一段很长的粘贴文本。" * 90_000  # about 1 MB
        store.append(owner, cid, Message("user", huge))
        request = {"model": "qwen-plus", "messages": [{"role": "user", "content": huge}]}
        store.append(owner, cid, Message("assistant", "Got it.", facts=AnswerFacts(model="qwen-plus", finish_reason="stop",
                                                                                   request=request)))
        started = time.perf_counter()
        page.reload()
        expect(page.get_by_test_id("stChatMessage").last).to_contain_text("Got it.", timeout=60_000)
        page.wait_for_selector(IDLE, timeout=60_000)
        print(f"open with a 1 MB message: {time.perf_counter() - started:.2f} s")
        assert len(page.content()) < 400_000, "the page holds the start of the text, not all of it"
        page.get_by_role("button", name="Show all").click()
        expect(page.get_by_test_id("stCode").last).to_contain_text("这是一段很长的粘贴文本。" * 3, timeout=30_000)
        browser.close()


GALLERY = """
import json, os, sys
sys.path.insert(0, {root!r})
import streamlit as st
from atri.safe_markdown import defuse_images

cases = json.loads(open(os.environ["ATRI_TEST_CASES"], encoding="utf-8").read())
raw = st.button("Draw them as written")
for text in cases if not raw else cases[:{known}]:
    st.markdown(text if raw else defuse_images(text))
st.write("END OF GALLERY")
"""
FUZZ_PIECES = ["`", "```", "$", "$$", ":::", ":x[", "[^a]", "[^A]", "[^a]:", "\n", "\n\n", "    ", "\t", "> ", "- ", "1. ",
               "]", "[", "(", ")", "<", ">", "\\", "|", "|---|", "~~~", "*", "_", "a", " ", "{", "}", "<div>",
               "</div>", "[r]: ", "![r]", "![r][]", "<!--", "-->", "^[", "\r"]


def gallery_cases(spy: PixelSpy, count: int = 400) -> tuple[list[str], list[str]]:
    """Markdown that Streamlit draws as an image (each a known way, then generated ones), and their names."""
    from tests.test_safe_markdown import STREAMLIT_ONLY

    known = {**STREAMLIT_ONLY, "plain": "![p](SPY)", "reference": "![r][x]\n\n[x]: SPY", "table": "| a |\n|---|\n| ![t](SPY) |",
             "in a link": "[![n](SPY)](http://example.com)", "in a list": "- ![l](SPY)", "in a quote": "> ![q](SPY)"}
    names = [f"known{index}" for index in range(len(known))]
    cases = [text.replace("http://spy/x.png", "SPY").replace("SPY", spy.url(name)) for text, name in zip(known.values(), names)]
    rng = random.Random(14)
    for index in range(count):
        parts = [rng.choice(FUZZ_PIECES) for _ in range(rng.randint(2, 14))]
        parts.insert(rng.randint(0, len(parts)), rng.choice(["![i](URL)", "![i](<URL>)", "URL"]).replace("URL", spy.url(f"gen{index}")))
        cases.append("".join(parts))
    return cases, names


def test_streamlit_draws_no_image_from_any_defused_markdown(spy, tmp_path):
    """The ways Streamlit's renderer reads Markdown differently from markdown-it, and generated mixtures of
    them: drawn after defuse_images, nothing is fetched; drawn as written, each known one is."""
    cases, names = gallery_cases(spy)
    (tmp_path / "cases.json").write_text(json.dumps(cases), encoding="utf-8")
    script = tmp_path / "gallery.py"
    script.write_text(GALLERY.format(root=str(ROOT), known=len(names)), encoding="utf-8")
    env = {"ATRI_TEST_CASES": str(tmp_path / "cases.json")}
    with streamlit_server(env, app_path=script) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, app.url)
        expect(page.get_by_text("END OF GALLERY")).to_be_visible(timeout=30_000)
        page.wait_for_timeout(1000)  # give a stray request time to arrive
        assert spy.paths == [], f"fetched {[cases[names.index(p[1:].split('.')[0])] if 'known' in p else p for p in spy.paths]}"

        page.get_by_role("button", name="Draw them as written").click()
        page.wait_for_selector(IDLE)
        expect(page.get_by_text("END OF GALLERY")).to_be_visible()
        page.wait_for_function(f"() => document.querySelectorAll('img').length >= {len(names)}")
        page.wait_for_timeout(500)
        assert sorted({path.split(".png")[0][1:] for path in spy.paths}) == sorted(names), "each known way does draw an image"
        browser.close()
