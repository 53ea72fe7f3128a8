"""Conversations survive reloads and server deaths, and stay private, in a real browser."""
import signal
import time

import pytest
from playwright.sync_api import expect, sync_playwright

from atri.local import free_port
from atri.owners import anonymous_owner
from atri.store import Store
from tests.browser import IDLE, NO_CHROMIUM, OPEN_CHAT_ROW, chromium_available, launch, streamlit_server
from tests.fake_provider import GOOD_KEY

pytestmark = pytest.mark.skipif(not chromium_available(), reason=NO_CHROMIUM)

ANSWER_END = "several small pieces."


def env_for(fake, database_url):
    return {"DASHSCOPE_API_KEY": GOOD_KEY, "DASHSCOPE_BASE_URL": fake.base_url, "ATRI_DATABASE_URL": database_url}


def send(page, text):
    page.get_by_test_id("stChatInputTextArea").fill(text)
    page.keyboard.press("Enter")


def wait_for_chat_in_sidebar(page):
    """A new chat joins the sidebar when its first answer is saved; that page run moves the sidebar's parts
    down, and what a click had opened there just before it (an expander) closes again."""
    expect(page.get_by_test_id("stSidebar").locator(OPEN_CHAT_ROW)).to_be_visible(timeout=20_000)
    page.wait_for_selector(IDLE)


def open_page(browser, url):
    page = browser.new_context(locale="en-US").new_page()
    page.goto(url)
    page.wait_for_selector(IDLE, timeout=60_000)
    return page


def test_reload_keeps_the_chat_and_another_visitor_cannot_open_it(fake, database_url):
    with streamlit_server(env_for(fake, database_url)) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, app.url)
        send(page, "Remember: my cat is called 小橘")
        expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text(ANSWER_END, timeout=20_000)
        page.wait_for_url("**?c=*")
        link = page.url

        page.reload()
        page.wait_for_selector(IDLE, timeout=60_000)
        expect(page.get_by_test_id("stChatMessage").nth(0)).to_contain_text("my cat is called 小橘")
        expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text(ANSWER_END)

        stranger = open_page(browser, link)
        expect(stranger.get_by_text("This conversation was not found")).to_be_visible()
        expect(stranger.get_by_test_id("stChatMessage")).to_have_count(0)
        expect(stranger.get_by_text("小橘")).to_have_count(0)
        browser.close()


def wait_for_partial_answer(store: Store, owner: str, cid: str, timeout_s: float = 15) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        saved = store.messages(owner, cid)
        if len(saved) == 2 and saved[1].content:
            return saved[1].content
        time.sleep(0.1)
    raise AssertionError("no partial answer reached the database")


def test_killed_mid_stream_the_question_and_partial_answer_survive(fake, database_url):
    fake.chunk_delay_s = 0.4
    port = free_port()
    with sync_playwright() as playwright:
        browser = launch(playwright)
        with streamlit_server(env_for(fake, database_url), port=port) as app:
            page = open_page(browser, app.url)
            send(page, "Tell me a long story")
            page.wait_for_url("**?c=*", timeout=20_000)
            cid = page.url.split("c=")[1].split("&")[0]
            cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "atri_owner")
            owner = anonymous_owner(cookie.rpartition(".")[0])
            partial = wait_for_partial_answer(Store(database_url), owner, cid)
            app.process.send_signal(signal.SIGKILL)  # no chance to save anything more
            app.process.wait()
        assert ANSWER_END not in partial

        with streamlit_server(env_for(fake, database_url), port=port) as app:
            page.reload()
            page.wait_for_selector(IDLE, timeout=60_000)
            messages = page.get_by_test_id("stChatMessage")
            expect(messages.nth(0)).to_contain_text("Tell me a long story")
            expect(messages.nth(1)).to_contain_text(partial.strip())
            expect(page.get_by_text("answer interrupted")).to_be_visible()
            expect(page.get_by_role("button", name="Retry")).to_be_visible()
        browser.close()


def test_two_replicas_on_one_postgresql_serve_the_same_conversations(fake, pg_url):
    """The deployment the README describes: any replica behind the load balancer can reopen a chat."""
    with streamlit_server(env_for(fake, pg_url)) as first, streamlit_server(env_for(fake, pg_url)) as second, \
            sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, first.url)  # cookies are per host, not per port: one visitor, two replicas
        send(page, "Replica test: my flight is on the 14th")
        expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text(ANSWER_END, timeout=20_000)
        page.wait_for_url("**?c=*")
        cid = page.url.split("c=")[1].split("&")[0]

        page.goto(f"{second.url}/?c={cid}")
        page.wait_for_selector(IDLE, timeout=60_000)
        expect(page.get_by_test_id("stChatMessage").nth(0)).to_contain_text("my flight is on the 14th")
        send(page, "And which day was that?")
        expect(page.get_by_test_id("stChatMessage").nth(3)).to_contain_text(ANSWER_END, timeout=20_000)
        sent = fake.streamed[-1]["messages"]
        assert any("14th" in m["content"] for m in sent if m["role"] == "user"), "replica 2 sent replica 1's turn"
        browser.close()
