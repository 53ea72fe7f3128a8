"""A conversation is a tree, in a real browser (issue 30): in a four-turn chat, editing the first question
starts a branch shown as ‹ 2 / 2 › with its own answer, asked with that branch's history only; ‹ brings the
old four turns back."""
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.browser import IDLE, NO_CHROMIUM, chromium_available, launch, streamlit_server
from tests.test_browser_persistence import ANSWER_END, env_for, open_page, send

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not chromium_available(), reason=NO_CHROMIUM)]


def test_editing_the_first_of_four_questions_branches_and_the_old_turns_come_back(fake, database_url):
    with streamlit_server(env_for(fake, database_url)) as app, sync_playwright() as playwright:
        page = open_page(launch(playwright), app.url)
        messages = page.get_by_test_id("stChatMessage")
        for n in range(1, 5):
            send(page, f"question {n}")
            expect(messages.nth(2 * n - 1)).to_contain_text(ANSWER_END, timeout=30_000)
            page.wait_for_selector(IDLE, timeout=20_000)
        messages.nth(0).hover()
        messages.nth(0).get_by_role("button", name="Edit").click()
        page.get_by_label("Edit your question, then send it again").fill("question 1, asked differently")
        page.get_by_role("button", name="Send", exact=True).click()
        expect(messages.nth(1)).to_contain_text("Echo: question 1, asked differently", timeout=30_000)
        page.wait_for_selector(IDLE, timeout=20_000)
        expect(messages).to_have_count(2)
        expect(messages.nth(0)).to_contain_text("2 / 2", timeout=20_000)  # once the history takes the turn over
        assert [m["role"] for m in fake.streamed[-1]["messages"]] == ["system", "user"], "the branch's history only"

        messages.nth(0).hover()
        messages.nth(0).get_by_role("button", name="‹").click()
        expect(messages).to_have_count(8, timeout=20_000)
        expect(messages.nth(0)).to_contain_text("1 / 2", timeout=20_000)
        expect(messages.nth(6)).to_contain_text("question 4")
