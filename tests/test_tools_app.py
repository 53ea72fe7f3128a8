"""Tools and web search on the chat page (issue 11), through AppTest against the fake DashScope server."""
from tests.test_app import all_text, answered, send


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
    assert "The provider searches the web" in all_text(app)
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


def test_an_mcp_servers_tool_is_switched_on_in_the_sidebar_and_called(app, dashscope_env, tmp_path, monkeypatch):
    import json
    import sys

    from tests.conftest import ROOT, new_app

    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {
        "test": {"command": sys.executable, "args": ["-m", "tests.mcp_server"], "cwd": str(ROOT)},
        "broken": {"command": "/nonexistent/mcp-server"}}}))
    monkeypatch.setenv("ATRI_MCP_CONFIG", str(config))
    at = new_app()
    text = all_text(at)
    assert "test: 3 tools" in [toggle.label for toggle in at.toggle] and "add, shout, explode" in text
    assert "broken is unavailable: FileNotFoundError" in text
    at.toggle(key="mcp::test").set_value(True).run()
    send(at, 'Add them [[test__add {"a": 2, "b": 3}]]')
    assert [tool["function"]["name"] for tool in dashscope_env.streamed[0]["tools"]] == \
        ["test__add", "test__shout", "test__explode"]
    step = next(e for e in at.expander if e.label.startswith("Tool test\\_\\_add") or e.label.startswith("Tool test__add"))
    assert step.code[1].value == "5" and "Tool results: test__add = 5" in all_text(at)


def test_a_destructive_tool_shows_its_arguments_and_runs_only_when_approved(dashscope_env, tmp_path, monkeypatch):
    """Issue 32: the page shows the waiting call's arguments with Approve and Deny; Deny leaves the file unwritten
    and the step shows as declined; Approve writes it."""
    import json
    import sys

    from tests.conftest import ROOT, new_app

    folder = tmp_path / "files"
    folder.mkdir()
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {
        "files": {"command": sys.executable, "args": ["-m", "tests.mcp_server", "--files", str(folder)], "cwd": str(ROOT)}}}))
    monkeypatch.setenv("ATRI_MCP_CONFIG", str(config))
    at = new_app()
    at.toggle(key="mcp::files").set_value(True).run()

    send(at, 'Save [[files__write_file {"path": "denied.txt", "content": "no"}]]')
    [deny] = [button for button in at.button if button.key.startswith("deny::")]
    assert any(button.key.startswith("approve::") for button in at.button)
    shown = all_text(at).replace("\\_", "_")  # names are drawn as plain text: Markdown's _ escaped
    assert "The model wants to call files__write_file (from files)" in shown and '"path": "denied.txt"' in shown
    deny.click().run()
    at = answered(at)
    assert not (folder / "denied.txt").exists()
    assert any(e.label.startswith("Tool files") and "declined" in e.label for e in at.expander)
    assert "The user declined to run files__write_file." in all_text(at)

    send(at, 'Save [[files__write_file {"path": "kept.txt", "content": "yes"}]]')
    next(button for button in at.button if button.key.startswith("approve::")).click().run()
    answered(at)
    assert (folder / "kept.txt").read_text() == "yes"
    assert not [button for button in at.button if button.key.startswith(("approve::", "deny::"))]


def test_the_context_meter_counts_the_tools_offered(app):
    """Issue 32: switching tools on raises the sidebar's estimate of the next request by about their schemas."""
    import json
    import re

    from atri.tokens import rough_count
    from atri.tools import BUILTINS, Toolbox, builtin_tools
    from tests.test_app import settings_panel

    def meter() -> int:
        text = settings_panel(app).get("progress")[0].proto.text
        return int(re.search(r"≈ ([\d,]+) /", text).group(1).replace(",", ""))

    before = meter()
    for name in BUILTINS:
        app.toggle(key=f"tool::{name}").set_value(True).run()
    schemas = json.dumps(Toolbox(builtin_tools(BUILTINS)).schemas(), ensure_ascii=False)
    assert abs(meter() - before - rough_count(schemas)) <= rough_count(schemas) // 5 + 5  # the model's own tokenizer, not the rough count


def test_the_embedded_model_is_offered_no_tools_and_the_panel_says_why(no_key_env):
    """Issue 32: the bundled 0.5B cannot use tools (measured in test_local): its switches are greyed, with the reason."""
    from tests.conftest import new_app

    at = new_app()
    assert at.selectbox(key="provider").value == "local"
    assert "The embedded offline model is offered no tools" in all_text(at)
    assert at.toggle(key="tool::calculator").disabled
