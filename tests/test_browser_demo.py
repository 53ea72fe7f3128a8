"""A shared demo in a real browser: the access gate, quotas on the host's key, a visitor's own key, and the
host's key kept out of everything a visitor (or the server log) can see."""
import re

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect, sync_playwright

from tests.browser import IDLE, NO_CHROMIUM, chromium_available, launch, open_chat_menu, streamlit_server
from tests.fake_provider import GOOD_KEY, Fault

pytestmark = pytest.mark.skipif(not chromium_available(), reason=NO_CHROMIUM)

PASSWORD = "let-me-in-7"
ANSWER_END = "several small pieces."
VISITOR_KEY = "sk-visitor-own-key-123"


def demo_env(fake, database_url, **settings):
    return {"DASHSCOPE_API_KEY": GOOD_KEY, "DASHSCOPE_BASE_URL": fake.base_url, "ATRI_DATABASE_URL": database_url,
            **settings}


def open_page(context, url):
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector(IDLE, timeout=60_000)
    return page


def send(page, text):
    page.get_by_test_id("stChatInputTextArea").fill(text)
    page.keyboard.press("Enter")


def test_the_gate_asks_first_refuses_a_wrong_password_and_remembers_the_right_one(fake, database_url):
    with streamlit_server(demo_env(fake, database_url, ATRI_ACCESS_PASSWORD=PASSWORD)) as app, \
            sync_playwright() as playwright:
        browser = launch(playwright)
        context = browser.new_context(locale="en-US")
        page = open_page(context, app.url)
        expect(page.get_by_text("Access password")).to_be_visible()
        expect(page.get_by_test_id("stChatInput")).to_have_count(0)
        expect(page.get_by_test_id("stSidebar")).to_have_count(0)

        page.get_by_label("Access password").fill("guess")
        page.get_by_role("button", name="Enter").click()
        expect(page.get_by_text("That is not the password.")).to_be_visible(timeout=10_000)
        expect(page.get_by_test_id("stChatInput")).to_have_count(0)

        page.get_by_label("Access password").fill(PASSWORD)
        page.get_by_role("button", name="Enter").click()
        expect(page.get_by_test_id("stChatInput")).to_be_visible(timeout=20_000)
        page.wait_for_function("document.cookie.includes('atri_access=')", timeout=10_000)
        cookie = next(c["value"] for c in context.cookies() if c["name"] == "atri_access")
        assert PASSWORD not in cookie

        page.reload()
        page.wait_for_selector(IDLE, timeout=60_000)
        expect(page.get_by_test_id("stChatInput")).to_be_visible()
        stranger = open_page(browser.new_context(locale="en-US"), app.url)
        expect(stranger.get_by_test_id("stChatInput")).to_have_count(0)
        browser.close()


def download_text(page, button) -> str:
    """Click a download button and read the file. Under a full suite's load a click on a lazily built
    download was lost twice (the file came at the second click); click again once after 20 s."""
    try:
        with page.expect_download(timeout=20_000) as download:
            button.click()
    except PlaywrightTimeoutError:
        with page.expect_download(timeout=60_000) as download:
            button.click()
    return download.value.path().read_text(encoding="utf-8")


def test_past_the_quota_nothing_is_sent_the_text_stays_and_an_own_key_goes_on(fake, database_url, tmp_path):
    log = tmp_path / "server.log"
    env = demo_env(fake, database_url, ATRI_QUOTA_TOKENS_PER_DAY="400")
    with streamlit_server(env, log=log) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser.new_context(locale="en-US"), app.url)
        frames: list[str] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(
            payload if isinstance(payload, str) else payload.decode("latin-1"))))
        page.reload()
        page.wait_for_selector(IDLE, timeout=60_000)
        send(page, "Hello")
        expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text(ANSWER_END, timeout=20_000)
        expect(page.get_by_test_id("stSidebar")).to_contain_text("of 400 tokens today", timeout=10_000)

        sent_before = len(fake.streamed)
        question = "A second question, " + "long enough to need more tokens than are left today " * 30
        send(page, question)
        expect(page.get_by_text("tokens for today on this demo are used up")).to_be_visible(timeout=20_000)
        expect(page.get_by_text("enter your own API key")).to_be_visible()
        expect(page.get_by_text("A second question").first).to_be_visible()  # kept, to retry or copy
        assert len(fake.streamed) == sent_before, "nothing went to the provider"

        own_key = page.get_by_role("textbox", name="Your own API key (optional)")
        own_key.fill(VISITOR_KEY)
        own_key.press("Enter")
        expect(page.get_by_test_id("stSidebar")).not_to_contain_text("of 400 tokens today", timeout=10_000)
        fake.accepted_keys = {GOOD_KEY, VISITOR_KEY}
        send(page, "Now on my own key")
        expect(page.get_by_test_id("stChatMessage")).to_have_count(6, timeout=20_000)
        expect(page.get_by_test_id("stChatMessage").nth(5)).to_contain_text(ANSWER_END, timeout=20_000)
        assert fake.keys_seen[-1] == VISITOR_KEY

        # The host's key is nowhere a visitor or the log can see: page, websocket frames, raw view, export.
        page.get_by_test_id("stChatMessage").last.get_by_role("button", name="Details").click()
        page.get_by_test_id("stPopoverBody").get_by_text("Raw request and response").click()
        page.wait_for_selector(IDLE, timeout=30_000)
        html = re.sub(r"<input[^>]*>", "", page.content())  # the visitor's own key sits in its own field
        open_chat_menu(page)
        export = page.get_by_role("button", name="Export JSON")
        expect(export).to_be_visible(timeout=10_000)
        page.wait_for_selector(IDLE, timeout=30_000)
        exported = download_text(page, export)
        browser.close()
    for seen, where in [(html, "page"), ("\n".join(frames), "websocket"), (exported, "export"),
                        (log.read_text(encoding="utf-8", errors="replace"), "server log")]:
        assert GOOD_KEY not in seen, f"the host's key reached the {where}"
        assert VISITOR_KEY not in seen, f"the visitor's key reached the {where}"
    assert frames, "the websocket frames were captured"


def test_two_tabs_at_once_cannot_overrun_a_quota_of_one(fake, database_url):
    fake.chunk_delay_s = 0.05
    with streamlit_server(demo_env(fake, database_url, ATRI_QUOTA_REQUESTS_PER_MINUTE="1")) as app, \
            sync_playwright() as playwright:
        browser = launch(playwright)
        context = browser.new_context(locale="en-US")
        tabs = [open_page(context, app.url), open_page(context, app.url)]
        for tab, text in zip(tabs, ["First tab", "Second tab"], strict=True):
            tab.get_by_test_id("stChatInputTextArea").fill(text)
        for tab in tabs:
            tab.get_by_test_id("stChatInputTextArea").press("Enter")
        for tab in tabs:
            tab.wait_for_selector(IDLE, timeout=30_000)
        refusals = sum(tab.get_by_text("requests a minute and they are used up").count() for tab in tabs)
        browser.close()
    assert len(fake.streamed) == 1, "one request in the minute, whichever tab was first"
    assert refusals == 1


HOSTILE_ANSWER = ("Here: <script>window.__pwned = 'script'</script> "
                  "<img src=x onerror=\"window.__pwned = 'img'\"> "
                  "[click me](javascript:window.__pwned='link') and <b onmouseover=\"window.__pwned='hover'\">bold</b>")


def test_model_output_with_script_onerror_and_javascript_links_renders_inert(fake, database_url):
    fake.script(Fault("answer", text=HOSTILE_ANSWER))
    with streamlit_server(demo_env(fake, database_url)) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser.new_context(locale="en-US"), app.url)
        send(page, "Say something nasty")
        answer = page.get_by_test_id("stChatMessage").nth(1)
        expect(answer).to_contain_text("click me", timeout=20_000)
        page.wait_for_selector(IDLE, timeout=30_000)
        for link in answer.locator("a").all():
            assert not (link.get_attribute("href") or "").lower().startswith("javascript:")
        answer.get_by_text("click me").first.click()
        answer.get_by_text("bold").first.hover()
        page.wait_for_timeout(300)
        assert page.evaluate("window.__pwned") is None
        assert answer.locator("script, img[onerror], [onmouseover]").count() == 0
        browser.close()
