"""The chat page, driven through Streamlit's AppTest against the fake DashScope server."""
import html
import json

import pytest

from tests.fake_provider import MODERATION, SERVER_ERROR, Fault


def send(at, text):
    at.chat_input[0].set_value(text).run()
    assert not at.exception, at.exception
    drawn_live = at.chat_message and at.chat_message[-1].name == "assistant" and "regenerate" not in [
        button.key for button in at.button]
    return answered(at) if drawn_live else at  # a refusal shows once: not run again


def answered(at):
    """The page once the answer a question or a click started is saved. AppTest returns from a run whose
    answer was drawn live to its end without following the page's own rerun (which draws it from the store,
    toolbar and ‹ n / m › included): about one run in five lacked them. The test runs the page again, as the
    browser's next run does."""
    at.run()
    assert not at.exception, at.exception
    return at


def bubbles(at):
    """Each message's role and text: questions are shown as typed (st.text), answers as Markdown."""
    return [(m.name, " ".join(e.value for e in [*m.text, *m.markdown])) for m in at.chat_message]


def settings_panel(at):
    """The chat's settings popover beside the model picker (issue 29: apart from the conversation list)."""
    def find(block):
        for child in getattr(block, "children", {}).values():
            if getattr(child, "type", None) == "popover":
                return child
            if (found := find(child)) is not None:
                return found
        return None
    panel = find(at.main)
    assert panel is not None, "the settings panel is on the page"
    return panel


def all_text(at):
    parts = [e.value for kind in ("markdown", "caption", "error", "warning", "code", "info") for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def test_two_turns_send_the_first_answer_back_but_not_its_reasoning(app):
    app.toggle(key="thinking::qwen3-max").set_value(True).run()
    send(app, "我是小明")
    send(app, "我是谁")
    names = [name for name, _ in bubbles(app)]
    assert names == ["user", "assistant", "user", "assistant"]
    first_answer = bubbles(app)[1][1]
    assert "Echo: 我是小明" in first_answer


def test_turn_two_request_carries_turn_one(app, dashscope_env):
    app.toggle(key="thinking::qwen3-max").set_value(True).run()
    send(app, "我是小明")
    send(app, "我是谁")
    sent = dashscope_env.streamed[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[2]["content"].startswith("Echo: 我是小明")
    assert "Let me think" not in json.dumps(sent)


def test_reasoning_is_shown_in_a_labelled_expander(app):
    app.toggle(key="thinking::qwen3-max").set_value(True).run()
    send(app, "hello")
    thinking = [e for e in app.expander if e.label.startswith("Thought for")]
    assert len(thinking) == 1
    assert "reasoning tokens / budget 1,000" in thinking[0].label
    assert "Let me think" in thinking[0].markdown[0].value


def test_json_mode_renders_json_and_says_what_it_added(app, dashscope_env):
    app.toggle(key="json_mode").set_value(True).run()
    send(app, "你好")
    assert app.json, "the answer should be rendered as JSON"
    assert json.loads(app.json[0].value)["reply"] == "Echo: 你好"
    assert "json" in dashscope_env.streamed[-1]["messages"][0]["content"].lower()
    assert any("“json”" in c.value for c in app.caption)


def test_json_mode_with_thinking_on_qwen3_max_drops_thinking_and_says_why(app, dashscope_env):
    app.toggle(key="thinking::qwen3-max").set_value(True).run()
    app.toggle(key="json_mode").set_value(True).run()
    send(app, "give me json")
    assert dashscope_env.streamed[-1]["enable_thinking"] is False
    assert any("cannot think in JSON mode" in c.value for c in app.caption)
    assert app.json


@pytest.mark.parametrize("faults, expected", [
    ([Fault("status", 400, MODERATION)], "content moderation"),
    ([Fault("status", 500, SERVER_ERROR)] * 3, "internal error"),
])
def test_errors_show_a_specific_message_and_keep_the_question(app, dashscope_env, faults, expected):
    dashscope_env.script(*faults)
    send(app, "keep me")
    assert bubbles(app)[0] == ("user", "keep me")
    assert expected in app.error[0].value
    assert "Traceback" not in all_text(app)
    assert app.button(key="regenerate").label == "Retry"


def test_wrong_key_says_check_the_key_and_region(app, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-wrong-but-secret")
    app.run()
    send(app, "hi")
    assert "region" in app.error[0].value
    assert "sk-wrong-but-secret" not in all_text(app)


def test_broken_stream_keeps_the_partial_answer_and_retry_finishes_it(app, dashscope_env):
    dashscope_env.script(Fault("cut", after_chunks=3))
    send(app, "tell me a story")
    partial = bubbles(app)[1][1]
    assert partial.startswith("Echo:") and "pieces" not in partial
    assert "interrupted" in " ".join(c.value for c in app.caption)
    assert "broke mid-answer" in app.error[0].value
    answered(app.button(key="regenerate").click().run())
    assert [name for name, _ in bubbles(app)] == ["user", "assistant"]
    assert "several small pieces" in bubbles(app)[1][1]
    assert not app.error
    assert "2 / 2" in [c.value for c in app.caption]  # the broken answer stays reachable


def test_a_cut_off_answer_says_so(app, dashscope_env):
    dashscope_env.script(Fault("length"))
    send(app, "write a long essay")
    assert "hit the length limit" in app.warning[0].value
    assert bubbles(app)[1][1].startswith("Echo:")


def test_connection_refused_is_explained(app, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_BASE_URL", "http://127.0.0.1:9/v1")
    app.run()
    send(app, "anyone there?")
    assert "Could not reach the provider" in app.error[0].value
    assert bubbles(app)[0] == ("user", "anyone there?")


def test_facts_under_each_answer(app):
    app.text_area(key="system_prompt").set_value("你是一只可爱的猫娘，名字叫Atri，会软软地对用户喵喵叫").run()  # 10 tokens with "hi"
    send(app, "hi")
    facts = [c.value for c in app.caption if c.value.startswith("qwen3-max")]
    assert facts and "first token" in facts[0] and "in 10" in facts[0]
    assert "in ≈" not in facts[0], "the fake provider reports usage: nothing is estimated"
    assert "¥0.0005" in facts[0], "10 in + 20 out at qwen3-max's ≤32K tier: (10×6 + 20×24) / 1M yuan"


def test_raw_view_shows_request_and_response_without_the_key(app):
    send(app, "小明")
    raw = next(e for e in app.expander if e.label == "Raw request and response")
    request, response = (json.loads(code.value) for code in raw.code)
    assert request["messages"][-1]["content"] == "小明"
    assert response["choices"][0]["finish_reason"] == "stop"
    assert "小明" in raw.code[1].value  # ensure_ascii=False, as the seed prints it
    assert "sk-test" not in raw.code[0].value


def test_picture_links_in_the_question_go_with_it_and_other_links_stay_words(app, dashscope_env):
    app.selectbox(key="model::dashscope").set_value("qwen3-vl-plus").run()
    send(app, "这张图显示了什么 https://example.com/a.png file:///etc/passwd.png")
    content = dashscope_env.streamed[-1]["messages"][-1]["content"]
    assert content[0] == {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    assert [part["type"] for part in content] == ["image_url", "text"], "file:// is never fetched as a picture"


def test_chinese_interface(app):
    app.selectbox(key="lang").set_value("zh").run()
    assert app.title[0].value == "Atri 聊天"
    send(app, "你好")
    assert any("首字" in c.value for c in app.caption)


def test_the_default_persona_is_a_neutral_assistant_in_the_visitors_language(app, dashscope_env):
    from atri.personas import persona_prompt
    from tests.conftest import new_app

    assert app.selectbox(key="persona").value == "assistant"
    assert app.text_area(key="system_prompt").value == persona_prompt("assistant", "en")
    app.selectbox(key="persona").set_value("atri").run()
    assert "cat-girl" in app.text_area(key="system_prompt").value, "the tutorial's cat-girl stays a choice"
    app.selectbox(key="persona").set_value("assistant").run()
    send(app, "hi")
    assert dashscope_env.streamed[-1]["messages"][0]["content"] == persona_prompt("assistant", "en")

    chinese = new_app()
    chinese.selectbox(key="lang").set_value("zh").run()
    assert chinese.text_area(key="system_prompt").value == persona_prompt("assistant", "zh"), "follows the language"
    send(chinese, "你好")
    assert dashscope_env.streamed[-1]["messages"][0]["content"] == persona_prompt("assistant", "zh")

    own = new_app()
    own.session_state["system_prompt"] = "Be brief."
    own.selectbox(key="lang").set_value("zh").run()
    assert own.text_area(key="system_prompt").value == "Be brief.", "a prompt of the visitor's own stays as written"


def test_the_model_is_picked_at_the_top_of_the_chat_and_the_settings_have_their_own_panel(app):
    main_keys = {w.key for kind in ("selectbox",) for w in app.main.get(kind)}
    assert {"provider", "model::dashscope"} <= main_keys, "the model picker is in the chat, not the sidebar"
    panel = settings_panel(app)
    for kind, key in [("slider", "temperature"), ("toggle", "json_mode"), ("selectbox", "persona"),
                      ("text_area", "system_prompt"), ("selectbox", "ctx_strategy"), ("toggle", "show_details_always"),
                      ("text_input", "custom_model::dashscope")]:
        assert key in {w.key for w in panel.get(kind)}, f"{key} in the settings panel"
        assert key not in {w.key for w in app.sidebar.get(kind)}, f"{key} no longer in the sidebar"
    assert "new_chat" in {b.key for b in app.sidebar.button}, "the sidebar keeps the conversations"


def test_new_chat_clears_the_conversation(app):
    send(app, "hi")
    app.button(key="new_chat").click().run()
    assert not app.chat_message


def test_the_thinking_budget_survives_switching_thinking_off_and_on(app, dashscope_env):
    app.toggle(key="thinking::qwen3-max").set_value(True).run()
    app.number_input(key="thinking_budget").set_value(300).run()
    app.toggle(key="thinking::qwen3-max").set_value(False).run()
    app.toggle(key="thinking::qwen3-max").set_value(True).run()
    send(app, "hi")
    assert dashscope_env.streamed[-1]["thinking_budget"] == 300
    assert not app.warning


def test_each_providers_model_choice_survives_switching_providers(app):
    app.selectbox(key="model::dashscope").set_value("qwen-plus").run()
    app.selectbox(key="provider").set_value("deepseek").run()
    app.selectbox(key="provider").set_value("dashscope").run()
    assert app.selectbox(key="model::dashscope").value == "qwen-plus"


def test_older_answers_send_their_details_only_when_asked(app):
    for text in ["first question", "second", "third"]:
        send(app, text)
    raw_views = [e for e in app.expander if e.label == "Raw request and response"]
    assert [len(view.code) for view in raw_views] == [0, 2, 2], "the first answer's raw view waits to be asked"
    show = next(b for b in app.button if b.key and b.key.startswith("open_button::raw::"))
    show.click().run()
    raw_views = [e for e in app.expander if e.label == "Raw request and response"]
    assert len(raw_views[0].code) == 2 and "first question" in raw_views[0].code[0].value


def test_a_visitor_can_bring_their_own_key(app, monkeypatch):
    from tests.fake_provider import GOOD_KEY

    monkeypatch.delenv("DASHSCOPE_API_KEY")
    app.run()
    assert "needs an API key" in app.sidebar.warning[0].value
    send(app, "hello without a key")
    assert "no API key yet" in app.error[0].value
    assert bubbles(app)[0] == ("user", "hello without a key")
    app.text_input(key="visitor_key::dashscope").set_value(GOOD_KEY).run()
    answered(app.button(key="regenerate").click().run())
    assert "Echo: hello without a key" in bubbles(app)[1][1]
    assert GOOD_KEY not in all_text(app)


def test_any_model_id_can_be_typed_and_its_abilities_are_guessed(app, dashscope_env):
    app.text_input(key="custom_model::dashscope").set_value("qwen3-vl-8b-thinking").run()
    assert any("guessed from its name" in c.value for c in settings_panel(app).caption)
    assert app.toggle(key="thinking_fixed::qwen3-vl-8b-thinking").value, "a *-thinking model always thinks"
    send(app, "hi")
    assert dashscope_env.streamed[-1]["model"] == "qwen3-vl-8b-thinking"
    assert "enable_thinking" not in dashscope_env.streamed[-1], "thinking-only models refuse enable_thinking"


def test_a_question_is_shown_exactly_as_typed_not_as_markdown(app):
    typed = "__init__ a*b*c\n    indented <b>not bold</b>"
    send(app, typed)
    question = app.chat_message[0]
    assert [e.value for e in question.text] == [typed]
    assert not question.markdown, "no Markdown: `__init__` would turn into a bold 'init'"


def details_popovers(message):
    return [p for p in message.get("popover") if p.proto.popover.label == "Details"]


def test_an_answer_shows_its_text_a_copy_button_and_its_details_behind_one_control(app):
    send(app, "hi")
    answer = app.chat_message[1]
    copy = [h.proto.body for h in answer.get("html") if "atri-copy" in h.proto.body]
    text = answer.markdown[0].value
    assert text.startswith("Echo: hi")
    assert len(copy) == 1 and f"data-copy=\"{html.escape(text, quote=True)}\"" in copy[0], "copies the Markdown"
    details = details_popovers(answer)
    assert len(details) == 1
    assert [c.value for c in details[0].caption if c.value.startswith("qwen3-max")], "the facts line is in there"
    assert [e.label.split(":")[0] for e in details[0].expander] == ["Context", "Raw request and response"]
    outside = [c.value for c in answer.caption if c.value.startswith("qwen3-max")]
    assert len(outside) == 1, "drawn once: inside the details control, not also under the text"


def test_always_show_details_draws_every_answers_details_under_it(app):
    app.toggle(key="show_details_always").set_value(True).run()
    send(app, "hi")
    answer = app.chat_message[1]
    assert not details_popovers(answer)
    assert any(c.value.startswith("qwen3-max") for c in answer.caption)
    assert any(e.label == "Raw request and response" for e in answer.expander)
