"""Tools and web search in a real browser (issue 11): the step, its result and the sources, as a visitor sees them.

With ATRI_WRITE_SCREENSHOTS=1 the answer is also saved as docs/tour-tools.png (README)."""
import os

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.browser import IDLE, NO_CHROMIUM, chromium_available, launch, open_settings, streamlit_server
from tests.conftest import ROOT
from tests.test_browser_persistence import env_for, open_page, send

pytestmark = pytest.mark.skipif(not chromium_available(), reason=NO_CHROMIUM)


def test_a_tool_step_and_the_sources_are_shown_under_the_answer(fake, database_url, tmp_path):
    with streamlit_server(env_for(fake, database_url)) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, app.url)
        page.set_viewport_size({"width": 1280, "height": 900})
        open_settings(page)
        page.get_by_text("Tools", exact=True).click()
        page.get_by_text("Calculator", exact=True).click()
        page.wait_for_selector(IDLE, timeout=30_000)
        page.get_by_text("Web search", exact=True).click()
        expect(page.get_by_text("sources are listed under the answer")).to_be_visible(timeout=30_000)
        send(page, 'What is 12 × 12, and any news? [[calculator {"expression": "12*12"}]]')
        answer = page.get_by_test_id("stChatMessage").nth(1)
        expect(answer).to_contain_text("Tool results: calculator = 144", timeout=30_000)
        page.wait_for_selector(IDLE, timeout=60_000)
        step = answer.get_by_test_id("stExpander").filter(has_text="Tool calculator")
        step.get_by_text("Tool calculator").click()
        expect(step).to_contain_text("144")
        expect(answer.get_by_text("Sources")).to_be_visible()
        expect(answer.locator(".katex").first).to_be_visible()  # \\( … \\) drawn as math
        expect(answer.locator("a[href='https://news.example.com/atri-tools']").first).to_be_visible()
        assert fake.streamed[0]["enable_search"] is True and fake.streamed[0]["tools"][0]["function"]["name"] == "calculator"
        shot = ROOT / "docs" / "tour-tools.png" if os.environ.get("ATRI_WRITE_SCREENSHOTS") else tmp_path / "tools.png"
        answer.screenshot(path=str(shot))
        browser.close()
