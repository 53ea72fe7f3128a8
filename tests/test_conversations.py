"""Conversations that last, driven through AppTest: reload, list, regenerate, edit, import."""
import json
import time

from tests.conftest import new_app
from tests.fake_provider import is_title_call
from tests.test_app import answered, bubbles, send


def conversation_buttons(at):
    return [b for b in at.sidebar.button if b.key and b.key.startswith("conversation::")]


def open_menu(at, cid):
    """Click a chat's ⋯ in the sidebar (AppTest cannot click a popover: its open state is what a click sets)."""
    at.session_state[f"menu::{cid}"] = True
    return at.run()


def test_reload_brings_the_conversation_back(app):
    send(app, "我是小明")
    owner, cid = app.session_state["owner"], app.query_params["c"]
    reloaded = new_app(owner=owner, conversation=cid)
    assert bubbles(reloaded) == bubbles(app)
    assert [name for name, _ in bubbles(reloaded)] == ["user", "assistant"]


def test_someone_elses_link_opens_nothing(app):
    send(app, "my secret")
    stranger = new_app(owner="anon:someone-else-entirely-0001", conversation=app.query_params["c"])
    assert not stranger.chat_message
    assert "not found" in stranger.warning[0].value
    assert not conversation_buttons(stranger)


def test_list_switch_rename_search_delete(app):
    send(app, "cats are great")
    first = app.query_params["c"]
    app.button(key="new_chat").click().run()
    send(app, "flights on the 14th")
    second = app.query_params["c"]
    assert [b.key.split("::")[1] for b in conversation_buttons(app)] == [second, first]  # newest first

    app.button(key=f"conversation::{first}").click().run()
    assert bubbles(app)[0] == ("user", "cats are great")

    open_menu(app, first)
    assert "cats are great" in app.text_input(key=f"rename_text::{first}").value  # this chat's title, not the last one's
    app.text_input(key=f"rename_text::{first}").set_value("Cat talk").run()
    app.button(key=f"rename::{first}").click().run()
    assert app.button(key=f"conversation::{first}").label == "Cat talk"

    app.text_input(key="conversation_search").set_value("14th").run()
    assert [b.key.split("::")[1] for b in conversation_buttons(app)] == [second]
    app.text_input(key="conversation_search").set_value("").run()

    open_menu(app, first)
    app.button(key=f"delete::{first}").click().run()
    assert "cannot be undone" in app.warning[0].value
    app.button(key=f"delete_yes::{first}").click().run()
    assert [b.key.split("::")[1] for b in conversation_buttons(app)] == [second]
    assert not app.chat_message


def test_regenerate_keeps_both_answers(app, dashscope_env):
    send(app, "tell me a joke")
    answered(app.button(key="regenerate").click().run())
    assert "2 / 2" in [c.value for c in app.caption]
    assert len(dashscope_env.streamed) == 2
    assert [m["role"] for m in dashscope_env.streamed[-1]["messages"]] == ["system", "user"]
    app.button(key="variant_prev").click().run()
    assert "1 / 2" in [c.value for c in app.caption]


def test_an_answer_is_regenerated_with_another_model_the_chat_then_goes_on_with(app, dashscope_env):
    send(app, "tell me a joke")
    answered(app.button(key="regenerate_with::qwen-plus").click().run())
    assert [r["model"] for r in dashscope_env.streamed] == ["qwen3-max", "qwen-plus"]
    assert "2 / 2" in [c.value for c in app.caption]
    assert app.selectbox(key="model::dashscope").value == "qwen-plus"
    assert "regenerate_with::qwen-plus" not in [b.key for b in app.button], "the model it came from is not offered"


def test_deleting_the_last_answer_then_an_earlier_question_with_what_follows(app, dashscope_env):
    for n in range(1, 4):
        send(app, f"question {n}")
    app.button(key="delete").click().run()  # the last answer: at once
    assert [text.split(".")[0] for _, text in bubbles(app)] == ["question 1", "Echo: question 1", "question 2",
                                                                "Echo: question 2", "question 3"]
    assert app.button(key="answer_again"), "the question left without an answer can get one"
    question_2 = [b.key.split("::")[1] for b in app.button if b.key and b.key.startswith("edit::")][1]
    app.button(key=f"delete::{question_2}").click().run()
    assert any("and everything after it (the 2 shown here" in c.value for c in app.caption), "asked first"
    app.button(key=f"delete::{question_2}::confirm").click().run()
    assert [text.split(".")[0] for _, text in bubbles(app)] == ["question 1", "Echo: question 1"], \
        "question 2 and the two after it went"
    reopened = new_app(app.session_state["owner"], app.query_params["c"]).run()
    assert [name for name, _ in bubbles(reopened)] == ["user", "assistant"], "for good"


def test_edit_the_last_question_and_resend(app, dashscope_env):
    send(app, "what is 2+2?")
    app.button(key="edit").click().run()
    app.text_area(key="edit_text").set_value("what is 3+3?").run()
    answered(app.button(key="send_edit").click().run())
    assert [text for _, text in bubbles(app)][0] == "what is 3+3?"
    assert "Echo: what is 3+3?" in bubbles(app)[1][1]
    assert dashscope_env.streamed[-1]["messages"][-1]["content"] == "what is 3+3?"


def test_an_edited_question_can_have_its_answer_regenerated(app, dashscope_env):
    send(app, "first question")
    send(app, "what is 2+2?")
    app.button(key="edit").click().run()
    app.text_area(key="edit_text").set_value("what is 3+3?").run()
    answered(app.button(key="send_edit").click().run())
    answered(app.button(key="regenerate").click().run())
    assert [text for _, text in bubbles(app)][2] == "what is 3+3?", "the edited question stays"
    assert "Echo: what is 3+3?" in bubbles(app)[3][1]
    assert [m["role"] for m in dashscope_env.streamed[-1]["messages"]] == ["system", "user", "assistant", "user"]


def test_a_title_is_asked_of_the_model_in_the_background(app, dashscope_env):
    send(app, "Recommend a science fiction film about space exploration")
    cid = app.query_params["c"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        titles = [r for r in dashscope_env.requests if is_title_call(r)]
        if titles:
            break
        time.sleep(0.1)
    assert titles and titles[0]["enable_thinking"] is False, "thinking off, said explicitly to a hybrid model"
    assert titles[0]["stream"] is True, "streamed, as every call is (some models answer no other way)"
    while time.monotonic() < deadline:
        app.run()
        if app.button(key=f"conversation::{cid}").label.startswith("Echo:"):  # the fake model's answer
            break
        time.sleep(0.1)
    assert app.button(key=f"conversation::{cid}").label.startswith("Echo:")


def test_export_json_then_import_it(app):
    send(app, "你好")
    open_menu(app, app.query_params["c"])
    labels = [button.proto.label for button in app.get("download_button")]
    assert labels == ["Export Markdown", "Export JSON"]
    from atri.ui.config import get_store

    data = get_store().export(app.session_state["owner"], app.query_params["c"])
    app.file_uploader(key="import_file").set_value(("chat.json", json.dumps(data).encode(), "application/json")).run()
    assert "Imported" in app.success[0].value
    assert len(conversation_buttons(app)) == 2
    assert bubbles(app)[0] == ("user", "你好")


def test_malformed_import_changes_nothing(app):
    send(app, "keep this")
    before = [b.key for b in conversation_buttons(app)]
    app.file_uploader(key="import_file").set_value(("bad.json", b'{"format": "atri.conversation", "version": 1, "messages": "x"}',
                                                    "application/json")).run()
    assert "nothing was changed" in app.error[0].value and "messages" in app.error[0].value
    assert [b.key for b in conversation_buttons(app)] == before
    assert bubbles(app)[0] == ("user", "keep this")


def test_reopening_a_chat_restores_its_model_and_persona(app, dashscope_env):
    app.selectbox(key="persona").set_value("translator").run()
    app.selectbox(key="model::dashscope").set_value("qwen-plus").run()
    send(app, "猫")
    translator_chat = app.query_params["c"]
    app.button(key="new_chat").click().run()
    app.selectbox(key="persona").set_value("atri").run()
    app.selectbox(key="model::dashscope").set_value("qwen3-max").run()
    send(app, "喵")
    app.button(key=f"conversation::{translator_chat}").click().run()
    assert app.selectbox(key="model::dashscope").value == "qwen-plus"
    assert app.selectbox(key="persona").value == "translator"
    send(app, "狗")
    sent = dashscope_env.streamed[-1]
    assert sent["model"] == "qwen-plus" and "translate" in sent["messages"][0]["content"]


def test_stored_requests_refer_to_earlier_messages_instead_of_copying_them(app):
    from atri.request import MESSAGE_REFS
    from atri.ui.config import get_store

    for text in ["我的猫叫小橘", "它几岁了?", "它喜欢吃什么?"]:
        send(app, text)
    owner, cid = app.session_state["owner"], app.query_params["c"]
    last = get_store().messages(owner, cid)[-1]
    assert set(last.facts.request["messages"]) == {"system", MESSAGE_REFS}
    assert len(last.facts.request["messages"][MESSAGE_REFS]) == 5
    raw = [e for e in app.expander if e.label == "Raw request and response"][-1]
    shown = json.loads(raw.code[0].value)["messages"]
    assert [m["content"] for m in shown[1:]][::2] == ["我的猫叫小橘", "它几岁了?", "它喜欢吃什么?"]
    exported = get_store().export(owner, cid)["messages"][-1]["facts"]["request"]["messages"]
    assert exported[1]["content"] == "我的猫叫小橘", "an export stands alone"


def test_a_chat_is_shared_from_its_menu_and_the_link_can_be_revoked(app, dashscope_env):
    send(app, "a good question")
    cid = app.query_params["c"]
    open_menu(app, cid)
    app.button(key=f"share::{cid}").click().run()
    [link] = [code.value for code in app.sidebar.code]
    assert "/shared?s=" in link and len(link.split("s=")[1]) >= 32
    token = link.split("s=")[1]
    app.button(key=f"revoke::{token}").click().run()
    assert not app.sidebar.code


def test_editing_an_early_question_branches_and_the_old_turns_come_back(app, dashscope_env):
    for n in range(1, 4):
        send(app, f"question {n}")
    edit_first = next(b for b in app.button if b.key and b.key.startswith("edit::"))
    answered(edit_first.click().run())
    app.text_area(key="edit_text").set_value("question 1, asked differently").run()
    answered(app.button(key="send_edit").click().run())
    assert [text for _, text in bubbles(app)][0] == "question 1, asked differently"
    assert len(bubbles(app)) == 2, "the new branch holds only its own turn"
    assert "1 / 1" not in [c.value for c in app.caption] and "2 / 2" in [c.value for c in app.caption]
    assert [m["role"] for m in dashscope_env.streamed[-1]["messages"]] == ["system", "user"], "its history only"
    answered(app.button(key="question_variant_prev").click().run())
    assert [text.split(".")[0] for _, text in bubbles(app)][::2] == ["question 1", "question 2", "question 3"]


def test_an_answer_branches_into_a_new_chat(app, dashscope_env):
    send(app, "question 1")
    send(app, "question 2")
    branch = next(b for b in app.button if b.key and b.key.startswith("branch::"))
    answered(branch.click().run())
    assert [name for name, _ in bubbles(app)] == ["user", "assistant"], "the new chat holds the thread up to there"
    assert len(conversation_buttons(app)) == 2
