"""Documents in a real browser (issue 11): attach a PDF in the chat box, ask about it, see where the
answer's excerpt came from, and remove it from the sidebar. `streamlit run`, the fake provider."""
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.browser import IDLE, NO_CHROMIUM, chromium_available, launch, streamlit_server
from tests.test_browser_persistence import ANSWER_END, env_for, open_page, send
from tests.test_documents import report_pdf, scanned_pdf

pytestmark = pytest.mark.skipif(not chromium_available(), reason=NO_CHROMIUM)
FILE_INPUT = "[data-testid=stChatInputFileUploadButton] input[type=file]"


def attach_and_ask(page, path, question: str) -> None:
    page.locator(FILE_INPUT).set_input_files(str(path))
    page.get_by_test_id("stChatInputTextArea").fill(question)
    expect(page.get_by_test_id("stChatInputSubmitButton")).to_be_enabled(timeout=20_000)
    page.get_by_test_id("stChatInputSubmitButton").click()


def test_a_pdf_is_attached_asked_about_shown_with_its_page_and_removed(fake, database_url, tmp_path):
    report = tmp_path / "report.pdf"
    report.write_bytes(report_pdf())
    with streamlit_server(env_for(fake, database_url)) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, app.url)
        attach_and_ask(page, report, "What is the launch code of the moon base?")
        question, answer = page.get_by_test_id("stChatMessage").nth(0), page.get_by_test_id("stChatMessage").nth(1)
        expect(answer).to_contain_text(ANSWER_END, timeout=60_000)
        page.wait_for_selector(IDLE, timeout=20_000)
        expect(question).to_contain_text("report.pdf · 12 pages ·")
        documents = page.get_by_test_id("stSidebar").get_by_test_id("stExpander").filter(has_text="Documents (1)")
        expect(documents).to_contain_text("report.pdf · 12 pages")
        answer.get_by_role("button", name="Details").click()  # the answer's facts, context and raw views
        details = page.get_by_test_id("stPopoverBody")
        details.get_by_text("Context:").click()
        first_excerpt = details.get_by_test_id("stExpander").filter(has_text="Document excerpts").locator("strong")
        expect(first_excerpt.first).to_have_text("[report.pdf p.7]")
        assert "AURORA-7731" in fake.streamed[-1]["messages"][0]["content"]

        documents.get_by_role("button").first.click()
        expect(page.get_by_test_id("stSidebar")).not_to_contain_text("Documents (1)", timeout=10_000)
        expect(question).not_to_contain_text("report.pdf")
        browser.close()


def test_a_scanned_pdf_says_so_and_goes_as_page_images(fake, database_url, tmp_path):
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(scanned_pdf(pages=2))
    with streamlit_server(env_for(fake, database_url)) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, app.url)
        attach_and_ask(page, scan, "What does this letter say?")
        page.get_by_role("button", name="Send to qwen3.5-plus").click()  # page images: to a model that can see
        expect(page.get_by_text("scan.pdf is a scan (it has no text): its first 2 of 2 pages were sent as images"))\
            .to_be_visible(timeout=20_000)
        expect(page.get_by_test_id("stChatMessage").nth(0).locator("img")).to_have_count(2)
        browser.close()


def test_an_answer_streams_to_its_end_beside_a_document_still_being_indexed(fake, database_url, tmp_path):
    """The sidebar's indexing progress redraws itself every few seconds while the next answer streams: its
    redraws wait for the answer's, they do not cut the answer's drawing short."""
    book = tmp_path / "book.pdf"
    book.write_bytes(report_pdf(pages=30))  # ~150 pieces: embedded in the background, for half a minute
    with streamlit_server(env_for(fake, database_url)) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, app.url)
        attach_and_ask(page, book, "What is the launch code of the moon base?")
        messages, sidebar = page.get_by_test_id("stChatMessage"), page.get_by_test_id("stSidebar")
        expect(messages.nth(1)).to_contain_text(ANSWER_END, timeout=60_000)
        expect(sidebar).to_contain_text("indexing", timeout=20_000)
        fake.chunk_delay_s = 0.5  # an answer of ~8 s: the indexing list redraws itself twice or more meanwhile
        send(page, "and what else is in the book?")
        expect(messages.nth(3)).to_contain_text(ANSWER_END, timeout=40_000)
        expect(page.get_by_role("button", name="Stop", exact=True)).to_have_count(0, timeout=10_000)
        assert "▌" not in messages.nth(3).inner_text()
        browser.close()
