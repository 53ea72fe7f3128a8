"""The sidebar's list of chats (issue 30) in a real browser: its groups by day, Ctrl+K to search, Ctrl+Shift+O
for a new chat (Cmd on a Mac), more chats as the list scrolls, each chat's ⋯ menu."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import select, update

from atri.store import Store
from atri.store.rows import ConversationRow
from tests.browser import IDLE, NO_CHROMIUM, OPEN_CHAT_ROW, chromium_available, launch, streamlit_server
from tests.test_browser_persistence import ANSWER_END, env_for, send

pytestmark = pytest.mark.skipif(not chromium_available(), reason=NO_CHROMIUM)

DESKTOP = {"width": 1280, "height": 900}
SEEDED = 110  # more than two pages of 50
LISTED = "[class*=st-key-chat_list] [class*=st-key-conversation--] button"
SEARCH = ".st-key-conversation_search input"


def seed_chats(database_url: str) -> None:
    """Chats of the browser's visitor (the owner of the chat it just made), of every age; one pinned."""
    store = Store(database_url)
    with store.engine.begin() as connection:
        owner = connection.execute(select(ConversationRow.owner)).scalar_one()
    now = datetime.now(timezone.utc)
    ages = [timedelta(days=1), timedelta(days=3)] + [timedelta(days=30 + n) for n in range(SEEDED - 2)]
    for n, age in enumerate(ages):
        cid = store.create_conversation(owner, f"seeded chat {n:02}")
        with store.engine.begin() as connection:
            connection.execute(update(ConversationRow).where(ConversationRow.id == cid)
                               .values(updated_at=now - age, pinned=n == SEEDED - 1))


@pytest.fixture
def app(fake, tmp_path):
    database_url = f"sqlite:///{tmp_path / 'atri.db'}"
    with streamlit_server(env_for(fake, database_url)) as running:
        yield running.url, database_url


def test_the_list_is_grouped_the_keyboard_searches_and_starts_a_chat_and_more_comes_as_it_scrolls(app):
    url, database_url = app
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context(locale="en-US", viewport=DESKTOP).new_page()
        page.goto(url)
        page.wait_for_selector(IDLE, timeout=60_000)
        send(page, "Plan a weekend in Hangzhou")
        expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text(ANSWER_END, timeout=20_000)
        page.wait_for_url("**?c=*")
        sidebar = page.get_by_test_id("stSidebar")
        expect(sidebar.locator(OPEN_CHAT_ROW)).to_be_visible(timeout=20_000)

        seed_chats(database_url)
        page.reload()
        page.wait_for_selector(IDLE, timeout=60_000)
        headings = sidebar.locator("[class*=st-key-chat_list] [data-testid=stCaptionContainer]")
        expect(headings).to_have_text(["Pinned", "Today", "Yesterday", "Previous 7 days", "Older"])
        expect(sidebar.locator(LISTED).first).to_have_text(f"seeded chat {SEEDED - 1}")  # the pinned one, though the oldest
        expect(sidebar.locator(LISTED)).to_have_count(50)

        # Scrolling to the end of the list shows the rest, a page at a time: no 50-chat wall.
        scroller = sidebar.locator(".st-key-chat_list")  # the list scrolls in its own box
        for shown in (100, SEEDED + 1):
            for _ in range(20):
                scroller.evaluate("element => element.scrollTo(0, element.scrollHeight)")
                if sidebar.locator(LISTED).count() >= shown:
                    break
                page.wait_for_timeout(500)
            expect(sidebar.locator(LISTED)).to_have_count(shown, timeout=10_000)
        expect(sidebar.locator(".st-key-list_more")).to_have_count(0)

        # Ctrl+K: the search box has the focus, even with the sidebar folded away.
        page.get_by_test_id("stChatInputTextArea").click()
        page.keyboard.press("Control+K")
        expect(page.locator(SEARCH)).to_be_focused()
        page.keyboard.press("Escape")
        page.get_by_test_id("stChatInputTextArea").click()
        sidebar.hover()  # its fold button shows under the mouse
        sidebar.get_by_test_id("stSidebarCollapseButton").locator("button").click()
        expect(sidebar).to_have_attribute("data-collapsed", "true")
        page.keyboard.press("Meta+K")
        expect(sidebar).to_have_attribute("data-collapsed", "false")
        expect(page.locator(SEARCH)).to_be_focused()
        page.keyboard.type("hangzhou")
        page.keyboard.press("Enter")
        expect(sidebar.locator(LISTED)).to_have_count(1)

        # Ctrl+Shift+O: a new chat, from anywhere on the page.
        page.get_by_test_id("stChatInputTextArea").click()
        page.keyboard.press("Control+Shift+O")
        expect(page.get_by_test_id("stChatMessage")).to_have_count(0)
        expect(page).not_to_have_url(re.compile(r"[?&]c="))
        page.wait_for_selector(IDLE)
        browser.close()


def test_a_chat_is_pinned_and_renamed_from_its_menu(app):
    url, _ = app
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context(locale="zh-CN", viewport=DESKTOP).new_page()
        page.goto(url)
        page.wait_for_selector(IDLE, timeout=60_000)
        send(page, "杭州周末去哪儿")
        expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text(ANSWER_END, timeout=20_000)
        sidebar = page.get_by_test_id("stSidebar")
        expect(sidebar.locator(OPEN_CHAT_ROW)).to_be_visible(timeout=20_000)
        page.wait_for_selector(IDLE)
        headings = sidebar.locator("[class*=st-key-chat_list] [data-testid=stCaptionContainer]")
        expect(headings).to_have_text(["今天"])

        sidebar.locator(OPEN_CHAT_ROW).get_by_role("button", name="对话选项").click()
        menu = page.get_by_test_id("stPopoverBody")
        menu.get_by_role("button", name="置顶").click()
        expect(headings).to_have_text(["置顶"])
        page.wait_for_selector(IDLE)

        sidebar.locator(OPEN_CHAT_ROW).get_by_role("button", name="对话选项").click()
        title = menu.get_by_role("textbox")
        title.fill("周末计划")
        menu.get_by_role("button", name="重命名").click()
        expect(sidebar.locator(OPEN_CHAT_ROW).locator(".stButton button")).to_have_text("周末计划")
        expect(menu).to_have_count(0)  # the menu closed
        browser.close()
