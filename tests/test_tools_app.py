"""Tools and web search on the chat page (issue 11), through AppTest against the fake DashScope server."""
from tests.test_app import all_text, send


def test_a_tool_switched_on_is_called_and_shown_as_a_collapsed_step(app, dashscope_env):
    app.toggle(key="tool::calculator").set_value(True).run()
    send(app, 'What is 12*12? [[calculator {"expression": "12*12"}]]')
    assert [tool["function"]["name"] for tool in dashscope_env.streamed[0]["tools"]] == ["calculator"]
    steps = [e for e in app.expander if e.label.startswith("Tool calculator")]
    assert len(steps) == 1 and " s" in steps[0].label
    assert [c.value for c in steps[0].code] == ['{\n  "expression": "12*12"\n}', "144"]
    assert "Tool results: calculator = 144" in all_text(app)
    raw = next(e for e in app.expander if e.label == "Raw request and response")
    assert "atri_tool_steps" in raw.code[1].value and '"tools"' in raw.code[0].value


def test_without_switches_no_tools_are_sent(app, dashscope_env):
    send(app, 'Hi [[calculator {"expression": "1"}]]')
    assert "tools" not in dashscope_env.streamed[0] and "Echo: Hi" in all_text(app)


def test_web_search_sends_the_switch_and_lists_the_sources_with_linked_citations(app, dashscope_env):
    app.selectbox(key="model::dashscope").set_value("qwen-plus").run()
    app.toggle(key="tool::web_search").set_value(True).run()
    assert "DashScope enable_search" in all_text(app)
    send(app, "What is new today?")
    sent = dashscope_env.streamed[-1]
    assert sent["enable_search"] is True and sent["search_options"]["enable_source"] is True
    text = all_text(app)
    assert "[[1]](<https://news.example.com/atri-tools>)" in text
    assert "1. [Atri news:\u200b tools arrive](<https://news.example.com/atri-tools>) · Example News" in text


def test_web_search_on_a_model_without_it_says_what_to_configure(app, dashscope_env):
    app.selectbox(key="model::dashscope").set_value("qwen3-vl-plus").run()
    app.toggle(key="tool::web_search").set_value(True).run()
    assert "ATRI_SEARXNG_URL" in all_text(app)
    send(app, "news?")
    assert "enable_search" not in dashscope_env.streamed[-1]
    assert "cannot search the web" in all_text(app)
