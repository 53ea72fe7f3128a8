"""Answers live on the server (issue 8): a reload, another conversation, a second tab — none of them stops
an answer, and the provider is asked once. Real browser, `streamlit run`, the fake provider."""
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.browser import (
    IDLE,
    NO_CHROMIUM,
    chat_messages_seen,
    chromium_available,
    launch,
    never_seen,
    open_settings,
    shown_once,
    streamlit_server,
    watch_chat_messages,
)
from tests.test_browser_persistence import ANSWER_END, env_for, open_page, send

pytestmark = pytest.mark.skipif(not chromium_available(), reason=NO_CHROMIUM)


def start_slow_answer(page, fake, text: str) -> str:
    send(page, text)
    answer = page.get_by_test_id("stChatMessage").nth(1)
    expect(answer).to_contain_text("Echo:", timeout=20_000)
    expect(answer).not_to_contain_text(ANSWER_END)
    expect(page.get_by_role("button", name="Get an answer")).to_have_count(0)  # it is being answered
    return page.url


def test_a_reload_mid_answer_finds_the_same_answer_still_coming(fake, database_url):
    fake.chunk_delay_s = 0.4
    with streamlit_server(env_for(fake, database_url)) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, app.url)
        start_slow_answer(page, fake, "a long answer, please")
        page.reload()
        answer = page.get_by_test_id("stChatMessage").nth(1)
        expect(page.get_by_role("button", name="Stop", exact=True)).to_be_visible(timeout=20_000)
        expect(answer).to_contain_text(ANSWER_END, timeout=30_000)
        expect(page.get_by_role("button", name="Stop", exact=True)).to_have_count(0, timeout=10_000)
        assert len(fake.streamed) == 1, "one request to the provider for one answer"
        browser.close()


def test_opening_another_chat_and_coming_back_does_not_stop_the_answer(fake, database_url):
    fake.chunk_delay_s = 0.4
    with streamlit_server(env_for(fake, database_url)) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, app.url)
        start_slow_answer(page, fake, "keep going while I look elsewhere")
        page.get_by_role("button", name="New chat").click()
        page.wait_for_selector(IDLE, timeout=20_000)
        expect(page.get_by_test_id("stChatMessage")).to_have_count(0)
        page.get_by_role("button", name="keep going while I look elsewhere").click()
        expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text(ANSWER_END, timeout=30_000)
        assert len(fake.streamed) == 1
        answer_text = page.get_by_test_id("stChatMessage").nth(1).inner_text()
        assert "stopped" not in answer_text and "interrupted" not in answer_text
        browser.close()


def test_two_tabs_on_one_conversation_show_the_same_live_answer(fake, database_url):
    fake.chunk_delay_s = 0.4
    with streamlit_server(env_for(fake, database_url)) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        context = browser.new_context(locale="en-US")
        first = context.new_page()
        first.goto(app.url)
        first.wait_for_selector(IDLE, timeout=60_000)
        link = start_slow_answer(first, fake, "two tabs watching")
        first.wait_for_url("**?c=*")
        second = context.new_page()
        second.goto(first.url)
        expect(second.get_by_role("button", name="Stop", exact=True)).to_be_visible(timeout=20_000)
        for tab in (first, second):
            expect(tab.get_by_test_id("stChatMessage").nth(1)).to_contain_text(ANSWER_END, timeout=30_000)
        assert len(fake.streamed) == 1 and link
        browser.close()


def test_a_sidebar_click_mid_answer_shows_the_answer_once(fake, database_url):
    """Every state the page takes is looked at, not samples: a question or an answer shown twice for a
    moment, while the whole page runs again in the middle of the answer or once it is saved, is seen."""
    fake.chunk_delay_s = 0.4
    with streamlit_server(env_for(fake, database_url)) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, app.url)
        start_slow_answer(page, fake, "one answer, drawn once")
        watch_chat_messages(page, never="another server")
        open_settings(page)  # opening it runs nothing; a click in it runs the whole page
        page.get_by_text("Thinking", exact=True).click()  # reruns the page while the answer is written
        messages = page.get_by_test_id("stChatMessage")
        expect(messages.nth(1)).to_contain_text(ANSWER_END, timeout=30_000)
        page.wait_for_selector(IDLE, timeout=20_000)  # the page has run again with the answer saved
        seen = chat_messages_seen(page)
        assert shown_once(seen) and {len(state) for state in seen} == {2}, f"each drawn once, all along: {seen}"
        assert never_seen(page), "drawn as this server's own answer, never as another's"
        assert len(fake.streamed) == 1
        # the chat's first full run came mid-answer: it must not put back the options the answer was asked with
        open_settings(page)
        expect(page.get_by_text("Thinking budget (tokens)")).to_be_visible()  # shown while Thinking is on
        browser.close()


def test_a_turn_runs_only_the_chat_and_the_sidebar_follows_what_changed(fake, database_url):
    """A question and its answer run only the conversation part of the page, which keeps following the
    newest message; once the answer is saved the sidebar gets what changed: the new chat in the list, and
    a meter that counts the new turn."""
    with streamlit_server(env_for(fake, database_url)) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, app.url)
        page.set_viewport_size({"width": 1100, "height": 500})
        sidebar, messages = page.get_by_test_id("stSidebar"), page.get_by_test_id("stChatMessage")
        open_settings(page)  # the meter is in the settings panel, which stays open while the page runs
        meter = page.get_by_text("Next request ≈")
        empty_chat = meter.inner_text()
        send(page, "the first question")
        expect(messages.nth(1)).to_contain_text(ANSWER_END, timeout=30_000)
        expect(sidebar.get_by_role("button", name="the first question")).to_be_visible(timeout=10_000)
        expect(meter).not_to_have_text(empty_chat, timeout=10_000)
        one_turn = meter.inner_text()
        watch_chat_messages(page)
        send(page, "and a second one")
        expect(messages.nth(3)).to_contain_text(ANSWER_END, timeout=30_000)
        expect(messages.nth(3)).to_be_in_viewport()  # the page follows the newest message
        expect(meter).not_to_have_text(one_turn, timeout=10_000)
        page.wait_for_selector(IDLE, timeout=20_000)
        seen = chat_messages_seen(page)
        counts = [len(state) for state in seen]
        assert shown_once(seen) and counts == sorted(counts) and counts[-1] == 4, f"each shown once, none gone: {seen}"
        expect(sidebar.get_by_role("button", name="the first question")).to_have_count(1)
        browser.close()


def test_questions_sent_the_moment_the_box_is_free_are_all_answered(fake, database_url):
    """Each question goes out as soon as the chat box takes it again, while the page is still drawing the
    answer before it into the history: none is lost, none is asked twice."""
    questions = [f"question number {n}" for n in range(1, 6)]
    with streamlit_server(env_for(fake, database_url)) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, app.url)
        messages = page.get_by_test_id("stChatMessage")
        for n, question in enumerate(questions):
            send(page, question)  # fill waits for the box to be enabled again
            expect(messages.nth(2 * n + 1)).to_contain_text(ANSWER_END, timeout=30_000)
        page.wait_for_selector(IDLE, timeout=20_000)
        expect(messages).to_have_count(2 * len(questions))
        for n, question in enumerate(questions):
            expect(messages.nth(2 * n)).to_contain_text(question)
        assert len(fake.streamed) == len(questions)
        browser.close()
