"""The chat as people expect it (issue 29), in a real browser, on a desktop and a phone, in English and Chinese:
an answer is its text and one small toolbar, copy puts its Markdown on the clipboard, a question shows as typed."""
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.browser import IDLE, NO_CHROMIUM, chromium_available, launch, streamlit_server
from tests.test_browser_persistence import ANSWER_END, env_for, send

pytestmark = pytest.mark.skipif(not chromium_available(), reason=NO_CHROMIUM)

DESKTOP, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}
MAX_ONE_LINE_ANSWER_PX = 120
QUESTION = "__init__ a*b*c **not bold**"
LABELS = {"en-US": {"copy": "Copy", "details": "Details", "edit": "Edit"},
          "zh-CN": {"copy": "复制", "details": "详情", "edit": "编辑"}}

# The height an answer would have with one line of text: its box, less the lines past the first.
HEIGHT_WITH_ONE_LINE = """(message) => {
    const text = message.querySelector('[data-testid=stMarkdownContainer] p');
    const line = parseFloat(getComputedStyle(text).lineHeight);
    const lines = Math.round(text.getBoundingClientRect().height / line);
    return message.getBoundingClientRect().height - (lines - 1) * line;
}"""


@pytest.fixture(scope="module")
def app_url(fake_server, tmp_path_factory):
    database_url = f"sqlite:///{tmp_path_factory.mktemp('surface') / 'atri.db'}"
    with streamlit_server(env_for(fake_server, database_url)) as app:
        yield app.url


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_an_answer_is_its_text_and_a_small_toolbar_copy_gives_its_markdown_and_a_question_shows_as_typed(
        app_url, fake, viewport, locale):
    labels = LABELS[locale]
    with sync_playwright() as playwright:
        browser = launch(playwright)
        phone = viewport is PHONE
        context = browser.new_context(locale=locale, viewport=viewport, has_touch=phone, is_mobile=phone,
                                      permissions=["clipboard-read", "clipboard-write"])
        page = context.new_page()
        page.goto(app_url)
        page.wait_for_selector(IDLE, timeout=60_000)
        send(page, QUESTION)
        question, answer = page.get_by_test_id("stChatMessage").nth(0), page.get_by_test_id("stChatMessage").nth(1)
        expect(answer).to_contain_text(ANSWER_END, timeout=20_000)
        page.wait_for_selector(IDLE, timeout=20_000)
        expect(answer.get_by_role("button", name=labels["copy"])).to_be_visible(timeout=10_000)

        # The question, as typed: no Markdown made `__init__` bold or ate the stars.
        expect(question.get_by_test_id("stText")).to_have_text(QUESTION)
        expect(question.locator("strong")).to_have_count(0)
        # The answer is Markdown (the fake echoes the question): drawn bold, copied as written.
        expect(answer.locator("strong").first).to_have_text("init")

        # Text first: the facts line waits behind the details control, and the answer stays short.
        expect(answer.get_by_text("qwen3-max ·")).to_have_count(0)
        height = answer.evaluate(HEIGHT_WITH_ONE_LINE)
        assert height <= MAX_ONE_LINE_ANSWER_PX, f"a one-line answer with its toolbar is {height:.0f} px tall"

        answer.get_by_role("button", name=labels["copy"]).click()
        expect(answer.locator(".atri-copied")).to_have_count(1)  # it says so
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied == f"Echo: {QUESTION}. Meow~ This answer streams in several small pieces."

        answer.get_by_role("button", name=labels["details"]).click()
        expect(page.get_by_test_id("stPopoverBody").get_by_text("qwen3-max ·")).to_be_visible()
        page.keyboard.press("Escape")
        toolbar = question.locator('[class*="st-key-toolbar_"]')
        if phone:  # no hover on a touch screen: every toolbar shows
            expect(toolbar).to_have_css("opacity", "1")
        else:  # with a mouse, an earlier message's toolbar shows on hover
            page.mouse.move(0, 0)
            expect(toolbar).to_have_css("opacity", "0")
            question.hover()
            expect(toolbar).to_have_css("opacity", "1")
        expect(question.get_by_role("button", name=labels["edit"])).to_be_visible()
        browser.close()


@pytest.mark.parametrize("scheme, dark", [("dark", True), ("light", False)])
def test_the_page_follows_the_systems_light_or_dark_choice(app_url, scheme, dark):
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context(locale="en-US", viewport=DESKTOP, color_scheme=scheme).new_page()
        page.goto(app_url)
        page.wait_for_selector(IDLE, timeout=60_000)
        red, green, blue = page.get_by_test_id("stApp").evaluate(
            "app => getComputedStyle(app).backgroundColor.match(/\\d+/g).slice(0, 3).map(Number)")
        luminance = (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255
        assert (luminance < 0.2) if dark else (luminance > 0.9), f"{scheme}: background rgb({red}, {green}, {blue})"
        browser.close()


def test_a_question_sent_from_higher_up_comes_into_view_and_the_keyboard_stops_and_edits(app_url, fake):
    tall = "\n\n".join(f"line {n}" for n in range(12))
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context(locale="en-US", viewport=DESKTOP).new_page()
        page.goto(app_url)
        page.wait_for_selector(IDLE, timeout=60_000)
        for turn in range(3):
            send(page, f"question {turn}\n\n{tall}")
            expect(page.get_by_test_id("stChatMessage").nth(2 * turn + 1)).to_contain_text(ANSWER_END, timeout=20_000)
            page.wait_for_selector(IDLE, timeout=20_000)

        page.mouse.move(700, 400)
        for _ in range(12):  # the reader scrolls up, as a person does
            page.mouse.wheel(0, -500)
        jump = page.get_by_role("button", name="Jump to the latest message")
        expect(jump).to_be_visible(timeout=5_000)
        expect(page.get_by_test_id("stChatMessage").nth(5)).not_to_be_in_viewport()

        fake.chunk_delay_s = 0.4
        send(page, "the new question")
        expect(page.get_by_test_id("stChatMessage").nth(6)).to_be_in_viewport(timeout=5_000)
        answer = page.get_by_test_id("stChatMessage").nth(7)
        expect(answer).to_contain_text("Echo:", timeout=20_000)
        expect(answer).to_be_in_viewport()
        expect(jump).to_be_hidden()

        page.keyboard.press("Escape")  # stops the answer
        expect(answer).to_contain_text("You stopped this answer", timeout=10_000)
        page.wait_for_selector(IDLE, timeout=20_000)

        page.get_by_test_id("stChatInputTextArea").click()
        page.keyboard.press("ArrowUp")  # edits the last question
        expect(page.get_by_role("textbox", name="Edit your question, then send it again")).to_have_value(
            "the new question", timeout=10_000)
        browser.close()
