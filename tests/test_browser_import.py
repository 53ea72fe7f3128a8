"""Issue 14, item 1, in a real browser: a server path given as an image is never read or served."""
import json

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import text

from atri.store import Store
from tests.browser import IDLE, NO_CHROMIUM, chromium_available, launch, streamlit_server
from tests.test_browser_persistence import ANSWER_END, env_for, open_page, send, wait_for_chat_in_sidebar
from tests.test_images import png

pytestmark = pytest.mark.skipif(not chromium_available(), reason=NO_CHROMIUM)


def media_bodies(page) -> list[bytes]:
    """Everything the page received from Streamlit's /media/ endpoint."""
    bodies: list[bytes] = []
    page.on("response", lambda response: bodies.append(response.body()) if "/media/" in response.url else None)
    return bodies


def test_a_server_path_as_an_image_is_refused_at_import_and_never_served(fake, database_url, tmp_path):
    secret = tmp_path / "outside-the-app.png"
    secret.write_bytes(png(40, 40))
    hostile = {"format": "atri.conversation", "version": 1,
               "messages": [{"role": "user", "content": "look", "images": [str(secret)]}]}
    upload = tmp_path / "chat.json"
    upload.write_text(json.dumps(hostile))
    with streamlit_server(env_for(fake, database_url)) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, app.url)
        served = media_bodies(page)
        send(page, "hello")
        expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text(ANSWER_END, timeout=20_000)
        page.wait_for_url("**?c=*")
        wait_for_chat_in_sidebar(page)

        page.get_by_text("Import a JSON conversation").first.click()
        page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(str(upload))
        expect(page.get_by_text("images.0")).to_be_visible(timeout=20_000)
        assert Store(database_url).engine.connect().execute(text("SELECT count(*) FROM conversations")).scalar() == 1

        # What an older version let in: the row names the file. The page must not read it.
        with Store(database_url).engine.begin() as connection:
            connection.execute(text("UPDATE messages SET data = :data, written_at = CURRENT_TIMESTAMP WHERE role = 'user'"),
                               {"data": json.dumps({"images": [str(secret)]})})
            connection.execute(text("UPDATE conversations SET version = version + 1"))  # both, as the store's writes do
        page.reload()
        page.wait_for_selector(IDLE, timeout=60_000)
        expect(page.get_by_text("could not be read").first).to_be_visible()
        expect(page.get_by_test_id("stImage")).to_have_count(0)
        assert secret.read_bytes() not in served
        browser.close()
