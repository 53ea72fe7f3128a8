"""The chat as people expect it (issue 29), in a real browser, on a desktop and a phone, in English and Chinese:
an answer is its text and one small toolbar, copy puts its Markdown on the clipboard, a question shows as typed."""
import re
import time

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.browser import IDLE, NO_CHROMIUM, chromium_available, launch, open_settings, streamlit_server
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


def test_the_web_search_switch_sits_on_the_chat_box_on_a_phone_and_turns_search_on(app_url, fake):
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context(locale="zh-CN", viewport=PHONE, has_touch=True, is_mobile=True).new_page()
        page.goto(app_url)
        page.wait_for_selector(IDLE, timeout=60_000)
        switch = page.locator(".st-key-composer_switches").get_by_text("联网搜索")
        expect(switch).to_be_visible()
        above, box = switch.bounding_box(), page.get_by_test_id("stChatInput").bounding_box()
        assert 0 <= box["y"] - (above["y"] + above["height"]) < 40, (above, box)
        switch.click()
        page.wait_for_selector(IDLE, timeout=20_000)
        send(page, "news today")
        expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text("来源", timeout=20_000)  # its sources
        assert fake.streamed[-1]["enable_search"] is True, "the question went with web search on"
        browser.close()


def background_luminance(page) -> float:
    red, green, blue = page.get_by_test_id("stApp").evaluate(
        "app => getComputedStyle(app).backgroundColor.match(/\\d+/g).slice(0, 3).map(Number)")
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


@pytest.mark.parametrize("scheme, dark", [("dark", True), ("light", False)])
def test_the_page_follows_the_systems_light_or_dark_choice(app_url, scheme, dark):
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context(locale="en-US", viewport=DESKTOP, color_scheme=scheme).new_page()
        page.goto(app_url)
        page.wait_for_selector(IDLE, timeout=60_000)
        luminance = background_luminance(page)
        assert (luminance < 0.2) if dark else (luminance > 0.9), f"{scheme}: background luminance {luminance:.2f}"
        browser.close()


def test_the_menus_switch_turns_a_light_system_dark_and_the_choice_stays(app_url):
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context(locale="zh-CN", viewport=PHONE, color_scheme="light").new_page()
        page.goto(app_url)
        page.wait_for_selector(IDLE, timeout=60_000)
        page.get_by_test_id("stMainMenu").click()
        page.get_by_test_id("stMainMenuItem-theme-Dark").click()
        page.wait_for_timeout(500)
        assert background_luminance(page) < 0.2, "dark at once"
        page.reload()
        page.wait_for_selector(IDLE, timeout=60_000)
        assert background_luminance(page) < 0.2, "and after a reload"
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


def test_the_chat_box_takes_a_question_while_an_answer_streams_and_sends_it_when_the_answer_ends(app_url, fake):
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context(locale="en-US", viewport=DESKTOP).new_page()
        page.goto(app_url)
        page.wait_for_selector(IDLE, timeout=60_000)
        fake.chunk_delay_s = 0.3
        send(page, "a slow answer, please")
        messages = page.get_by_test_id("stChatMessage")
        expect(messages.nth(1)).to_contain_text("Echo:", timeout=20_000)

        box = page.get_by_test_id("stChatInputTextArea")
        expect(box).to_be_editable()
        box.fill("and a second question")
        page.keyboard.press("Enter")
        expect(page.get_by_text("Sends when this answer ends: and a second question")).to_be_visible(timeout=5_000)
        expect(messages).to_have_count(2)  # still answering the first

        fake.chunk_delay_s = 0.0
        expect(messages.nth(1)).to_contain_text(ANSWER_END, timeout=30_000)
        expect(messages.nth(2)).to_contain_text("and a second question", timeout=30_000)
        expect(messages.nth(3)).to_contain_text(ANSWER_END, timeout=30_000)
        browser.close()


ANSWER_SHAPES = """(message) => {
    const column = message.querySelector('[data-testid=stMarkdownContainer]').getBoundingClientRect().left;
    const list = message.querySelector('ol');
    const probe = document.createElement('span');  // as wide as the widest marker, "12. "
    probe.textContent = '12.\u00a0';
    probe.style.font = getComputedStyle(list.querySelector('li')).font;
    document.body.appendChild(probe);
    const marker = probe.getBoundingClientRect().width;
    probe.remove();
    return {room: list.querySelector('li').getBoundingClientRect().left - column,  // the marker sits left of its item
            marker, headings: [...message.querySelectorAll('h2, h3')].map(h => parseFloat(getComputedStyle(h).fontSize)),
            text: parseFloat(getComputedStyle(message.querySelector('li')).fontSize)};
}"""


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_headings_in_an_answer_stay_below_the_title_a_long_lists_numbers_fit_and_a_phone_shows_the_title(
        app_url, viewport):
    phone = viewport is PHONE
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context(locale="en-US", viewport=viewport, has_touch=phone, is_mobile=phone).new_page()
        page.goto(app_url)
        page.wait_for_selector(IDLE, timeout=60_000)
        title = page.get_by_role("heading", level=1).first.bounding_box()
        button = page.get_by_test_id("stExpandSidebarButton")
        if phone:  # the sidebar is folded behind its button, which must not cover the title
            corner = button.bounding_box()
            assert corner["y"] + corner["height"] <= title["y"] or corner["x"] + corner["width"] <= title["x"], (
                f"the sidebar button {corner} covers the title {title}")
        title_px = page.get_by_role("heading", level=1).first.evaluate("h => parseFloat(getComputedStyle(h).fontSize)")

        send(page, "Here:\n\n## A heading\n\n### A smaller one\n\n" + "\n".join(f"{n}. item {n}" for n in range(1, 13)))
        answer = page.get_by_test_id("stChatMessage").nth(1)
        expect(answer).to_contain_text(ANSWER_END, timeout=20_000)
        page.wait_for_selector(IDLE, timeout=20_000)
        expect(answer.locator("h2")).to_be_visible()
        page.wait_for_timeout(300)  # the history takes the answer over from the turn's box (hidden until then)
        shapes = answer.evaluate(ANSWER_SHAPES)
        # Streamlit's own room (its item's 1.15em margin) is narrower than "12. ": the column clipped it
        assert shapes["room"] >= shapes["marker"] + shapes["text"] / 4, f"'12. ' and a quarter em to spare: {shapes}"
        assert len(shapes["headings"]) == 2 and all(px <= title_px * 0.5 for px in shapes["headings"]), (shapes, title_px)
        assert all(px > shapes["text"] for px in shapes["headings"]), "still headings"
        browser.close()


def test_a_used_up_limit_counts_down_and_puts_the_question_back_in_the_chat_box(fake_server, tmp_path):
    env = {**env_for(fake_server, f"sqlite:///{tmp_path / 'atri.db'}"), "ATRI_QUOTA_REQUESTS_PER_MINUTE": "1"}
    with streamlit_server(env) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context(locale="en-US", viewport=DESKTOP).new_page()
        page.goto(app.url)
        page.wait_for_selector(IDLE, timeout=60_000)
        # The limit counts per clock minute: both questions must fall in the same one, with a wait left to count down
        if time.time() % 60 > 35:
            page.wait_for_timeout((61 - time.time() % 60) * 1000)
        send(page, "the one request of this minute")
        expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text(ANSWER_END, timeout=20_000)
        page.wait_for_selector(IDLE, timeout=20_000)
        send(page, "and one more")
        refusal = page.get_by_test_id("stAlertContentError").filter(has_text="used up")
        expect(refusal).to_be_visible(timeout=10_000)
        expect(page.get_by_test_id("stChatInputTextArea")).to_have_value("and one more")
        seconds = int(re.search(r"in (\d+) s", refusal.inner_text()).group(1))
        page.wait_for_timeout(2_500)
        later = int(re.search(r"in (\d+) s", refusal.inner_text()).group(1))
        assert later <= seconds - 2, f"the wait counts down: {seconds} s, then {later} s"
        browser.close()


STREAMLIT_ENGLISH = ["Upload", "per file", "Drag and drop", "Press Enter", "Enter to apply", "submit form"]
# The text a reader sees: every text node drawn at a readable size, and what a style draws after an element.
VISIBLE_TEXT = """() => {
    const seen = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
        const element = walker.currentNode.parentElement;
        if (!element || !element.checkVisibility() || parseFloat(getComputedStyle(element).fontSize) === 0) continue;
        seen.push(walker.currentNode.textContent);
    }
    for (const element of document.querySelectorAll('*')) {
        const after = getComputedStyle(element, '::after').content;
        if (after && after !== 'none' && after !== 'normal' && element.checkVisibility()) seen.push(after);
    }
    return seen.join('\\n');
}"""


def test_a_chinese_page_shows_none_of_streamlits_own_english(app_url):
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context(locale="zh-CN", viewport=DESKTOP).new_page()
        page.goto(app_url)
        page.wait_for_selector(IDLE, timeout=60_000)
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_test_id("stExpander").filter(has_text="导入 JSON 对话").locator("summary").click()
        expect(sidebar.get_by_test_id("stFileUploaderDropzone")).to_be_visible()
        sidebar.get_by_placeholder("搜索标题或内容").click()
        page.keyboard.type("x")  # a typed field shows Streamlit's hint
        expect(sidebar.get_by_test_id("InputInstructions")).to_have_count(1)
        shown = page.evaluate(VISIBLE_TEXT)
        assert "上传" in shown and "每个文件不超过 50 MB" in shown and "按回车键确认" in shown, shown
        assert not [english for english in STREAMLIT_ENGLISH if english in shown], shown

        open_settings(page)  # the system prompt's box: the sidebar has no text area since the image links left it
        panel = page.get_by_test_id("stPopoverBody")
        panel.get_by_test_id("stTextArea").first.locator("textarea").press("End")
        page.keyboard.type("x")
        expect(panel.get_by_test_id("InputInstructions")).to_have_count(1)
        shown = page.evaluate(VISIBLE_TEXT)
        assert "加回车键确认" in shown and not [english for english in STREAMLIT_ENGLISH if english in shown], shown

        page.keyboard.press("Escape")
        page.get_by_test_id("stMainMenu").click()  # the theme switch
        expect(page.get_by_test_id("stMainMenuList")).to_be_visible()
        shown = page.evaluate(VISIBLE_TEXT)
        assert all(words in shown for words in ("跟随系统", "浅色", "深色", "打印")), shown
        assert not [english for english in ("System", "Light", "Dark", "Print", "Record screen") if english in shown], shown
        browser.close()
