"""The compare page, driven through AppTest against the fake DashScope server."""
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


def compare_app():
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("app_pages/1_Compare.py").run()
    assert not at.exception, at.exception
    return at


def test_two_models_answer_side_by_side(dashscope_env):
    at = compare_app()
    at.multiselect(key="cmp_models").set_value(["dashscope · qwen3-max", "dashscope · qwq-plus"]).run()
    at.text_area(key="cmp_question").set_value("用一句话介绍杭州").run()
    at.button(key="cmp_ask").click().run()
    assert not at.exception
    answers = [md.value for md in at.markdown if md.value.startswith("Echo:")]
    assert len(answers) == 2 and all("用一句话介绍杭州" in a for a in answers)
    facts = [c.value for c in at.caption if c.value.startswith(("qwen3-max", "qwq-plus"))]
    assert len(facts) == 2 and all("first token" in f for f in facts)
    assert any(e.label.startswith("Thought for") for e in at.expander), "qwq-plus shows its reasoning"
    assert {r["model"] for r in dashscope_env.streamed} == {"qwen3-max", "qwq-plus"}


def test_the_chat_settings_survive_a_visit(dashscope_env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.selectbox(key="model::dashscope").set_value("qwen-plus").run()
    at.text_area(key="system_prompt").set_value("You are terse.").run()
    at.switch_page("app_pages/1_Compare.py").run()
    at.switch_page("app_pages/0_Chat.py").run()
    assert at.selectbox(key="model::dashscope").value == "qwen-plus"
    assert at.text_area(key="system_prompt").value == "You are terse."


def test_compare_uses_its_own_persona_not_the_chats(dashscope_env):
    from atri.personas import persona_prompt

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.text_area(key="system_prompt").set_value("You are terse.").run()
    at.switch_page("app_pages/1_Compare.py").run()
    at.multiselect(key="cmp_models").set_value(["dashscope · qwen3-max"]).run()
    at.text_area(key="cmp_question").set_value("hello").run()
    at.button(key="cmp_ask").click().run()
    assert dashscope_env.streamed[-1]["messages"][0]["content"] == persona_prompt("assistant", "en")
    at.selectbox(key="cmp_persona").set_value("atri").run()
    at.button(key="cmp_ask").click().run()
    assert dashscope_env.streamed[-1]["messages"][0]["content"] == persona_prompt("atri", "en")


def test_without_a_host_key_the_hint_says_this_page_uses_the_hosts_keys(no_key_env):
    hints = [info.value for info in compare_app().info]
    assert any("this page uses the host's keys only" in hint for hint in hints), hints
    assert not any("enter a key in the sidebar" in hint for hint in hints), "this page's sidebar takes no key"
