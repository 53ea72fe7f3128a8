"""How messages are drawn when their content is hostile or huge (issue 14, items 1-3 and 8), in AppTest.

Each test draws one crafted message with atri.ui.render, the way a conversation page does.
"""
import json
import pickle
import re

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from atri.images import image_from_bytes
from atri.messages import AnswerFacts, Message
from tests.conftest import new_app
from tests.test_images import png

SPY = "http://127.0.0.1:9/x.png?d=secret"


def draw_message() -> None:
    import pickle

    import streamlit as st

    from atri.ui.render import show_message

    message = pickle.loads(st.session_state["message"])
    show_message("en", message, {}, recent=st.session_state.get("recent", True))


def drawn(message: Message, recent: bool = True) -> AppTest:
    at = AppTest.from_function(draw_message, default_timeout=30)
    at.session_state["message"] = pickle.dumps(message)  # built directly: even what validation would refuse
    at.session_state["recent"] = recent
    at.run()
    assert not at.exception, at.exception
    return at


def images(at: AppTest) -> list[str]:
    return [url for element in at.get("image") for url in element.value]


def shown_text(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [t.value for t in at.text] + [c.value for c in at.caption]
                     + [c.value for c in at.code])


def test_an_answer_with_a_spy_image_draws_a_link_and_no_image():
    answer = Message("assistant", f"Here: ![s]({SPY}) done", reasoning=f"thinking ![r]({SPY})",
                     facts=AnswerFacts(model="m", finish_reason="stop"))
    at = drawn(answer)
    assert images(at) == []
    markdown = [m.value for m in at.markdown]
    assert f"[s]({SPY})" in markdown[1] and "![s]" not in markdown[1]
    assert f"[r]({SPY})" in markdown[0] and "![r]" not in markdown[0]


def test_a_question_with_a_spy_image_draws_a_link_and_no_image():
    at = drawn(Message("user", f"look ![q]({SPY}) and <img src=\"{SPY}\">", id=1))
    assert images(at) == [] and at.text[0].value == f"look ![q]({SPY}) and <img src=\"{SPY}\">"  # as typed, never drawn


def test_a_path_is_never_given_to_st_image(tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(png(32, 32))
    at = drawn(Message("user", "hi", images=[str(secret)], thumbnails=[str(secret)], id=1))
    assert images(at) == []
    assert "cannot be shown" in shown_text(at)


def test_an_upload_shows_its_stored_thumbnail():
    url, thumbnail = image_from_bytes("cat.png", png(600, 400))
    at = drawn(Message("user", "a cat", images=[url], thumbnails=[thumbnail], id=1))
    assert len(images(at)) == 1 and "/media/" in images(at)[0]  # bytes, served by Streamlit


def test_an_upload_stored_without_a_thumbnail_gets_one_and_a_broken_one_a_caption():
    url, _ = image_from_bytes("cat.png", png(600, 400))
    broken = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="
    at = drawn(Message("user", "older row", images=[url, broken], id=1))  # thumbnails missing: stored before them
    assert len(images(at)) == 1
    assert "cannot be shown" in shown_text(at)


def test_a_damaged_thumbnail_is_made_again_from_the_image_or_gives_a_caption_never_an_error():
    url, _ = image_from_bytes("cat.png", png(64, 64))
    damaged = "data:image/webp;base64,AAAAAAAA"  # what an old or damaged row may hold
    at = drawn(Message("user", "damaged", images=[url, damaged], thumbnails=[damaged, damaged], id=1))
    assert len(images(at)) == 1
    assert "cannot be shown" in shown_text(at)


def test_web_images_are_links_until_the_visitor_asks_to_load_them():
    web = "https://example.com/cat.png"
    at = drawn(Message("user", "from the web", images=[web], thumbnails=[""], id=7))
    assert images(at) == [] and "(<https://example.com/cat.png>)" in at.markdown[0].value
    at.button(key="load_images::7::button").click().run()
    assert images(at) == [web]


def test_a_very_long_text_shows_its_start_and_the_rest_on_demand():
    text = "word " * 30_000 + "THE END"
    at = drawn(Message("user", text, id=3))
    assert len(at.text[0].value) < 25_000 and "THE END" not in shown_text(at)
    at.button(key="unfold_button::content::3").click().run()
    assert at.code[0].value == text


def test_a_huge_request_is_sent_to_the_page_only_when_asked_and_clipped_then():
    huge = "x" * 1_000_000
    facts = AnswerFacts(model="m", finish_reason="stop", request={"model": "m", "messages": [{"role": "user", "content": huge}]})
    at = drawn(Message("assistant", "ok", facts=facts, id=5))
    assert "x" * 5_000 not in shown_text(at)  # the raw view waits for a click
    at.button(key="open_button::raw::5").click().run()
    request = at.code[0].value
    assert len(request) < 10_000 and "(998,000 more characters)" in request
    assert json.loads(request)["messages"][0]["content"].startswith("xxx")


@pytest.mark.parametrize("title", ["![x](http://127.0.0.1:9/t.png)", "**bold** _it_", ":red[red] :material/home:",
                                   "[link](http://x)", "- a list", "# heading", "`code`", "<img src=x>"])
def test_titles_are_shown_as_written_in_the_sidebar(app, title):
    from atri.ui.config import get_store

    owner = app.session_state["owner"]
    get_store().create_conversation(owner, title)
    label = next(b.label for b in new_app(owner=owner).sidebar.button if (b.key or "").startswith("conversation::"))
    html = MarkdownIt("commonmark").render(label)
    assert not re.search(r"<(img|a|strong|em|li|h1|code)\b", html), html
    assert ":red[" not in label and ":material/" not in label  # Streamlit's own directives, broken
