"""Issue 14 on the page (AppTest): damaged rows, a locked database and images for a model that can't see."""
import json

import pytest
from sqlalchemy import text

from tests.conftest import new_app
from tests.test_app import all_text, bubbles, send
from tests.test_hostile_input import hold_sqlite_lock


def test_a_conversation_with_a_damaged_row_opens_says_so_and_the_tab_keeps_working(app, database_url):
    send(app, "hello")
    owner, cid = app.session_state["owner"], app.query_params["c"]
    from atri.ui.config import get_store

    with get_store().engine.begin() as connection:  # what an older version let an import write
        connection.execute(text("UPDATE messages SET data = :data, written_at = CURRENT_TIMESTAMP WHERE role = 'assistant'"),
                           {"data": json.dumps({"options": {"provider_id": "dashscope", "model": "m",
                                                            "temperature": "hot"}})})
        connection.execute(text("UPDATE conversations SET version = version + 1"))  # as a write does
    reopened = new_app(owner=owner, conversation=cid)
    assert "could not be read" in all_text(reopened) and "temperature" in all_text(reopened)
    assert bubbles(reopened)[0] == ("user", "hello")
    reopened.button(key="new_chat").click().run()
    assert not reopened.exception
    send(reopened, "still works")
    assert bubbles(reopened)[0] == ("user", "still works")


@pytest.fixture
def short_sqlite_wait(monkeypatch):
    """A write waits 1 s for a lock (5 s in the app) from the first connection on: the test holds one for 4 s."""
    monkeypatch.setattr("atri.store.engine.SQLITE_BUSY_TIMEOUT_MS", 1000)


def test_a_locked_database_keeps_the_question_on_the_page(short_sqlite_wait, app, database_url):
    locker = hold_sqlite_lock(database_url.removeprefix("sqlite:///"), seconds=4)
    send(app, "please keep this question")
    assert "your message was not sent" in app.error[0].value
    assert app.code[0].value == "please keep this question"
    locker.join()
    send(app, "please keep this question")
    assert bubbles(app)[0] == ("user", "please keep this question")


def test_a_model_that_cannot_see_says_so_before_anything_is_sent_and_the_text_alone_still_goes(app, dashscope_env):
    send(app, "what is in the picture? https://example.com/a.png")  # qwen3-max reads no images
    assert dashscope_env.streamed == []
    assert "can't see images" in all_text(app)
    app.button(key="send_text_only").click().run()
    app.run()
    assert dashscope_env.streamed[-1]["messages"][-1]["content"] == "what is in the picture? https://example.com/a.png"
    send(app, "and now?")  # the conversation is not broken
    assert dashscope_env.streamed[-1]["messages"][-1]["content"] == "and now?"


def test_images_in_markdown_and_titles_are_links_that_load_nothing(app, dashscope_env):
    from atri.safe_markdown import has_images

    spy = "![s](http://127.0.0.1:9/pixel.png?d=secret)"
    send(app, f"look {spy}")  # the fake provider echoes it back in the answer; the title takes the first words
    app.button(key="send_text_only").click().run()  # a picture's link, for a model that cannot see
    app.run()
    shown = [m.value for m in app.markdown] + [c.value for c in app.caption]
    assert any("127.0.0.1:9/pixel.png" in text for text in shown), "still there, as a link"
    assert not any(has_images(text) for text in shown)
    title = next(b for b in app.sidebar.button if b.key and b.key.startswith("conversation::")).label
    assert "pixel" in title and not has_images(title) and "\\!\\[" in title
