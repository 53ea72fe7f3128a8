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


def switch_on(page, label: str) -> None:
    """A click on a switch just drawn in the settings panel can land while the panel still moves (the expander
    around it opening) and change nothing: click until it is on."""
    switch = page.get_by_role("switch", name=label)
    for _ in range(3):
        page.get_by_text(label, exact=True).click()
        page.wait_for_selector(IDLE, timeout=30_000)
        if switch.is_checked():
            return
    expect(switch).to_be_checked()


def test_a_destructive_tool_waits_for_approve_or_deny_in_the_browser(fake, database_url, tmp_path):
    """Issue 32: the answer pauses on write_file with its arguments; Deny leaves the file unwritten and the model is
    told; Approve writes it and the answer goes on."""
    import json
    import sys

    folder = tmp_path / "files"
    folder.mkdir()
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {
        "files": {"command": sys.executable, "args": ["-m", "tests.mcp_server", "--files", str(folder)], "cwd": str(ROOT)}}}))
    env = {**env_for(fake, database_url), "ATRI_MCP_CONFIG": str(config)}
    with streamlit_server(env) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, app.url)
        open_settings(page)
        page.get_by_text("Tools", exact=True).click()
        switch_on(page, "files: 5 tools")
        page.keyboard.press("Escape")
        send(page, 'Save [[files__write_file {"path": "denied.txt", "content": "no"}]]')
        deny = page.get_by_role("button", name="Deny")
        expect(deny).to_be_visible(timeout=30_000)
        expect(page.get_by_text('"path": "denied.txt"')).to_be_visible()
        deny.click()
        expect(page.get_by_text("Tool results: files__write_file = The user declined to run files__write_file.")
               ).to_be_visible(timeout=30_000)
        assert not (folder / "denied.txt").exists()
        page.wait_for_selector(IDLE, timeout=60_000)
        send(page, 'Save [[files__write_file {"path": "kept.txt", "content": "yes"}]]')
        approve = page.get_by_role("button", name="Approve")
        expect(approve).to_be_visible(timeout=30_000)
        approve.click()
        expect(page.get_by_text("Tool results: files__write_file = Successfully wrote to kept.txt")
               ).to_be_visible(timeout=30_000)
        assert (folder / "kept.txt").read_text() == "yes"
        expect(page.get_by_role("button", name="Approve")).to_have_count(0)
        page.wait_for_selector(IDLE, timeout=60_000)
        send(page, 'Save [[files__write_file {"path": "stopped.txt", "content": "stop"}]]')
        expect(page.get_by_role("button", name="Approve")).to_be_visible(timeout=30_000)
        page.get_by_role("button", name="Stop").click()  # Stop while the call waits: the answer ends, nothing runs
        expect(page.get_by_role("button", name="Approve")).to_have_count(0, timeout=30_000)
        page.wait_for_selector(IDLE, timeout=60_000)
        assert not (folder / "stopped.txt").exists() and "stopped.txt" in fake.streamed[-1]["messages"][-1]["content"]
        browser.close()


def test_a_picture_an_mcp_tool_returned_is_shown_in_its_step(fake, database_url, tmp_path):
    """Issue 32: server-everything's get-tiny-image, called over stdio; its step shows the picture (the thumbnail,
    decoded by Chromium), and the result names it."""
    import json
    import re

    from tests.test_mcp import SERVERS_DIR

    command = SERVERS_DIR / "node_modules" / ".bin" / "mcp-server-everything"
    if not command.exists():
        pytest.skip("@modelcontextprotocol/server-everything is not installed (tests/test_mcp.py installs it)")
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"everything": {"command": str(command), "args": ["stdio"]}}}))
    env = {**env_for(fake, database_url), "ATRI_MCP_CONFIG": str(config)}
    with streamlit_server(env) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, app.url)
        open_settings(page)
        page.get_by_text("Tools", exact=True).click()
        switch = page.get_by_role("switch", name=re.compile(r"^everything: \d+ tools"))
        for _ in range(3):  # as switch_on: a click while the panel still opens may change nothing
            page.get_by_text(re.compile(r"^everything: \d+ tools$")).click()
            page.wait_for_selector(IDLE, timeout=30_000)
            if switch.is_checked():
                break
        expect(switch).to_be_checked()
        page.keyboard.press("Escape")
        send(page, "Show me [[everything__get-tiny-image]]")
        answer = page.get_by_test_id("stChatMessage").nth(1)
        expect(answer).to_contain_text("Tool results: everything__get-tiny-image", timeout=30_000)
        page.wait_for_selector(IDLE, timeout=60_000)
        step = answer.get_by_test_id("stExpander").filter(has_text="Tool everything__get-tiny-image")
        step.get_by_text("Tool everything__get-tiny-image").click()
        picture = step.locator("img").first
        expect(picture).to_be_visible(timeout=10_000)
        assert picture.evaluate("image => image.complete && image.naturalWidth") == 20  # the 20 px logo, decoded
        expect(step).to_contain_text("[image 1: image/png")
        browser.close()
