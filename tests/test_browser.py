"""A person in a real browser: type, watch the answer stream in, open the reasoning."""
import time

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.browser import IDLE, NO_CHROMIUM, chromium_available, launch, open_settings, streamlit_server
from tests.fake_provider import GOOD_KEY

pytestmark = pytest.mark.skipif(not chromium_available(), reason=NO_CHROMIUM)


@pytest.fixture
def app_url(fake, database_url):
    fake.chunk_delay_s = 0.08
    with streamlit_server({"DASHSCOPE_API_KEY": GOOD_KEY, "DASHSCOPE_BASE_URL": fake.base_url,
                           "ATRI_DATABASE_URL": database_url}) as app:
        yield app.url


def test_chat_streams_and_reasoning_can_be_read(app_url):
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(locale="en-US")
        page.goto(app_url)
        page.wait_for_selector(IDLE, timeout=60_000)

        open_settings(page)
        page.get_by_text("Thinking", exact=True).click()
        expect(page.get_by_text("Thinking budget (tokens)")).to_be_visible()
        page.wait_for_selector(IDLE)

        page.get_by_test_id("stChatInputTextArea").fill("Hello Atri, I am Xiaoming")
        page.keyboard.press("Enter")

        answer = page.get_by_test_id("stChatMessage").nth(1)
        # While it streams, the answer carries a cursor and is still incomplete.
        expect(answer.get_by_text("▌", exact=False)).to_be_visible(timeout=20_000)
        expect(answer).not_to_contain_text("several small pieces")
        expect(answer).to_contain_text("Echo: Hello Atri, I am Xiaoming. Meow~ This answer streams in several small pieces.",
                                       timeout=20_000)
        page.wait_for_selector(IDLE)

        thinking = answer.get_by_test_id("stExpander").filter(has_text="Thought for")
        expect(thinking).to_be_visible()
        expect(thinking.get_by_text("step by step")).not_to_be_visible()
        thinking.get_by_text("Thought for").click()
        expect(thinking.get_by_text("Let me think about this step by step")).to_be_visible()
        browser.close()


def test_stop_keeps_what_arrived(app_url, fake):
    fake.chunk_delay_s = 0.5
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(locale="en-US")
        page.goto(app_url)
        page.wait_for_selector(IDLE, timeout=60_000)
        page.get_by_test_id("stChatInputTextArea").fill("a slow answer please")
        page.keyboard.press("Enter")
        answer = page.get_by_test_id("stChatMessage").nth(1)
        expect(answer).to_contain_text("Echo:", timeout=20_000)
        page.get_by_role("button", name="Stop", exact=True).click()
        expect(answer).to_contain_text("You stopped this answer", timeout=10_000)
        expect(answer).not_to_contain_text("several small pieces")
        expect(page.get_by_role("button", name="Retry")).to_be_visible()
        deadline = time.monotonic() + 5  # the server notices the closed connection at its next chunk
        while fake.hangups == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fake.hangups == 1, "Stop closed the connection: the provider stops generating too"
        page.reload()  # and it was saved that way
        page.wait_for_selector(IDLE, timeout=60_000)
        answer = page.get_by_test_id("stChatMessage").nth(1)
        expect(answer).to_contain_text("Echo:")
        expect(answer).to_contain_text("You stopped this answer")
        browser.close()


def test_an_attached_image_is_sent_and_stays_in_the_history(app_url, fake, tmp_path):
    from tests.test_images import png

    picture = tmp_path / "cat.png"
    picture.write_bytes(png(40, 30))
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(locale="en-US")
        page.goto(app_url)
        page.wait_for_selector(IDLE, timeout=60_000)
        open_settings(page)
        page.get_by_role("textbox", name="Other model id (optional)").fill("qwen3-vl-plus")  # a model that can see
        page.keyboard.press("Enter")
        page.wait_for_selector(IDLE)
        page.keyboard.press("Escape")  # the settings panel closes: it covered the chat box's send button
        expect(page.get_by_test_id("stPopoverBody")).to_have_count(0)
        page.locator("[data-testid=stChatInputFileUploadButton] input[type=file]").set_input_files(str(picture))
        expect(page.get_by_test_id("stFileChipImagePreview")).to_be_visible()
        page.get_by_test_id("stChatInputTextArea").fill("这张图显示了什么")
        expect(page.get_by_test_id("stChatInputSubmitButton")).to_be_enabled()
        page.get_by_test_id("stChatInputSubmitButton").click()
        question = page.get_by_test_id("stChatMessage").nth(0)
        expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text("I see 1 image", timeout=20_000)
        expect(question.locator("img")).to_have_count(1)
        part = fake.streamed[-1]["messages"][-1]["content"][0]
        assert part["type"] == "image_url" and part["image_url"]["url"].startswith("data:image/png;base64,")
        browser.close()
