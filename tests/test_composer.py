"""The chat box (issue 29's composer): picture links written in a question go as images, a model that cannot
see says so before anything is sent and offers one that can, and a question typed while an answer is being
written waits for it. Driven through AppTest against the fake DashScope server."""
from __future__ import annotations

from atri.messages import AnswerFacts, Message
from atri.store import STREAMING
from atri.ui.config import get_store
from tests.conftest import new_app
from tests.test_app import bubbles, send

CAT = "https://example.com/photos/cat.png"


def test_a_picture_link_written_in_the_question_goes_with_it_as_an_image(app, dashscope_env):
    app.selectbox(key="model::dashscope").set_value("qwen3-vl-plus").run()
    send(app, f"What is in {CAT}? And in https://example.com/page.html?")
    content = dashscope_env.streamed[-1]["messages"][-1]["content"]
    assert [part["image_url"]["url"] for part in content if part["type"] == "image_url"] == [CAT], \
        "the picture's link goes as an image, the web page's stays text"
    assert any(part["type"] == "text" and CAT in part["text"] for part in content), "the question is sent as typed"


def test_images_for_a_model_that_cannot_see_are_held_and_sent_to_one_that_can_in_one_click(app, dashscope_env):
    app.selectbox(key="model::dashscope").set_value("qwen-plus").run()
    question = f"What breed is this? {CAT}"
    send(app, question)
    assert dashscope_env.streamed == [], "nothing goes out before the visitor chooses"
    assert not app.chat_message, "nor is the question saved"
    assert any("qwen-plus can't see images" in w.value for w in app.warning)
    assert app.chat_input[0].value == question, "the text is back in the chat box"

    app.button(key="send_to_seeing_model").click().run()
    app.run()  # the answer, asked by the run that draws the new model's choices
    request = dashscope_env.streamed[-1]
    assert request["model"] == app.selectbox(key="model::dashscope").value != "qwen-plus"
    assert {"type": "image_url", "image_url": {"url": CAT}} in request["messages"][-1]["content"]
    assert [role for role, _ in bubbles(app)] == ["user", "assistant"]


def test_a_question_typed_while_an_answer_is_written_goes_when_it_ends(app, dashscope_env):
    send(app, "Tell me a long story")
    owner, cid = app.session_state["owner"], app.query_params["c"]
    store = get_store()
    half = Message("assistant", "Once upon", facts=AnswerFacts(model="qwen-plus", error_kind=STREAMING))
    half.id = store.append(owner, cid, Message("user", "Another one"))  # an answer another server is writing
    half.id = store.append(owner, cid, half)
    asked = len(dashscope_env.streamed)

    app.chat_input[0].set_value("And then?").run()
    assert len(dashscope_env.streamed) == asked, "not asked while the last answer is being written"
    assert any("Sends when this answer ends: And then?" in c.value for c in app.caption)

    half.content, half.facts = "Once upon a time.", AnswerFacts(model="qwen-plus", finish_reason="stop")
    store.save(owner, half)
    reopened = new_app(owner, cid)  # the page's next run, once the answer has ended
    reopened.session_state["queued_question"] = app.session_state["queued_question"]
    reopened.run()
    reopened.run()
    assert dashscope_env.streamed[-1]["messages"][-1]["content"] == "And then?"
    assert bubbles(reopened)[-2] == ("user", "And then?")


def test_a_clip_linked_in_the_question_goes_by_its_link_to_a_model_that_watches(app, dashscope_env):
    clip = "https://example.com/clips/cat.mp4"
    send(app, f"What does the cat do in {clip}?")
    assert dashscope_env.streamed == [] and any("qwen3-max can't watch videos" in w.value for w in app.warning)
    app.button(key="send_to_seeing_model").click().run()
    app.run()
    request = dashscope_env.streamed[-1]
    assert request["model"] == "qwen3.5-plus"
    assert {"type": "video_url", "video_url": {"url": clip}} in request["messages"][-1]["content"], \
        "the provider fetches the clip itself"
