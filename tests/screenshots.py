"""Screenshots of the chat for docs/ (issue 29): empty, its settings panel, a turn, its details, a long answer,
scrolled up, a phone; English and Chinese. Against the fake DashScope server, in headless Chromium. Not a test: look at what it takes.

    .venv/bin/python -m tests.screenshots [docs/screenshots]
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

import tests.conftest  # noqa: F401  (a clean configuration, as in the tests)
from tests.browser import IDLE, launch, open_settings, streamlit_server
from tests.fake_provider import FakeProvider
from tests.test_browser_persistence import ANSWER_END, env_for, send

DESKTOP, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}
LONG = ("Here is what I found:\n\n| model | thinks | sees |\n|---|---|---|\n| qwen3-max | hybrid | no |\n"
        "| qwen3-vl-plus | hybrid | yes |\n\n```python\nfrom openai import OpenAI\n\nclient = OpenAI()\n"
        "print(client.models.list())\n```\n\n1. first\n2. second\n\n$e^{i\\pi} + 1 = 0$")


def shoot(browser, url: str, out: Path, locale: str, lang: str) -> None:
    for viewport in (DESKTOP, PHONE):
        phone = viewport is PHONE
        context = browser.new_context(locale=locale, viewport=viewport, has_touch=phone, is_mobile=phone)
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector(IDLE, timeout=60_000)
        if not phone:
            page.screenshot(path=out / f"chat-empty-{lang}.png")
            open_settings(page)  # the settings panel beside the model picker
            page.wait_for_timeout(300)
            page.screenshot(path=out / f"chat-settings-{lang}.png")
            page.keyboard.press("Escape")
        send(page, "__init__ a*b*c" if lang == "en" else "用一句话介绍杭州")
        expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text(ANSWER_END, timeout=20_000)
        page.wait_for_selector(IDLE)
        page.wait_for_timeout(500)
        if phone:
            page.screenshot(path=out / f"chat-phone-{lang}.png")
            context.close()
            continue
        page.screenshot(path=out / f"chat-turn-{lang}.png")
        page.get_by_test_id("stChatMessage").nth(1).locator("[class*=st-key-details_] [data-testid=stPopoverButton]").click()
        expect(page.get_by_test_id("stPopoverBody")).to_be_visible()
        page.wait_for_timeout(300)
        page.screenshot(path=out / f"chat-details-{lang}.png")
        page.keyboard.press("Escape")
        send(page, LONG)
        expect(page.get_by_test_id("stChatMessage").nth(3)).to_contain_text(ANSWER_END, timeout=20_000)
        page.wait_for_selector(IDLE)
        page.wait_for_timeout(500)
        page.screenshot(path=out / f"chat-long-{lang}.png")
        page.mouse.move(700, 400)
        for _ in range(6):
            page.mouse.wheel(0, -300)
        page.wait_for_timeout(1000)
        page.screenshot(path=out / f"chat-scrolled-up-{lang}.png")  # "jump to latest" above the chat box
        context.close()


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    fake = FakeProvider().start()
    try:
        for locale, lang in [("en-US", "en"), ("zh-CN", "zh")]:
            with tempfile.TemporaryDirectory() as data, \
                    streamlit_server(env_for(fake, f"sqlite:///{data}/atri.db")) as app, sync_playwright() as playwright:
                browser = launch(playwright)
                shoot(browser, app.url, out, locale, lang)
                browser.close()
    finally:
        fake.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
