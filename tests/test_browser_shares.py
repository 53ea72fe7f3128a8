"""Share links in a real browser (issue 30): an answer shared up to itself, opened in a fresh browser with no
cookie, reads as a read-only copy of the chat up to there; revoked from the chat's ⋯ menu, the link shows
nothing."""
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.browser import IDLE, NO_CHROMIUM, OPEN_CHAT_ROW, chromium_available, launch, streamlit_server
from tests.test_browser_persistence import ANSWER_END, env_for, open_page, send

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not chromium_available(), reason=NO_CHROMIUM)]


def test_an_answer_shared_reads_up_to_it_in_a_fresh_browser_until_revoked(fake, database_url):
    with streamlit_server(env_for(fake, database_url)) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, app.url)
        for question in ("the first question", "a second question"):
            send(page, question)
            expect(page.get_by_test_id("stChatMessage").last).to_contain_text(ANSWER_END, timeout=30_000)
            page.wait_for_selector(IDLE, timeout=20_000)
        first_answer = page.get_by_test_id("stChatMessage").nth(1)
        first_answer.hover()
        first_answer.get_by_role("button", name="Share up to this answer").click()
        link = page.get_by_test_id("stMainBlockContainer").get_by_test_id("stCode")
        expect(link).to_contain_text("/shared?s=", timeout=10_000)
        address = link.inner_text().strip()

        stranger = browser.new_context(locale="en-US").new_page()  # no cookie: not the owner
        stranger.goto(address)
        stranger.wait_for_selector(IDLE, timeout=60_000)
        expect(stranger.get_by_text("A read-only copy, shared on")).to_be_visible()
        messages = stranger.get_by_test_id("stChatMessage")
        expect(messages).to_have_count(2)
        expect(messages.nth(0)).to_contain_text("the first question")
        expect(stranger.get_by_test_id("stChatInput")).to_have_count(0)

        page.keyboard.press("Escape")
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.locator(OPEN_CHAT_ROW).get_by_role("button", name="Chat options").click()
        page.get_by_test_id("stPopoverBody").get_by_role("button", name="Revoke").click()
        page.wait_for_selector(IDLE, timeout=20_000)
        stranger.reload()
        stranger.wait_for_selector(IDLE, timeout=60_000)
        expect(stranger.get_by_text("This share link no longer works")).to_be_visible()
        expect(stranger.get_by_test_id("stChatMessage")).to_have_count(0)
        browser.close()
