"""MCP servers from the host's file (issue 11): a stdio server written with the `mcp` SDK, its tools called end
to end; a server that fails says why and the others go on."""
import json
import sys

import pytest

from atri.mcp_tools import McpConfigError, McpHub, load_config, parse_config, tool_name
from atri.tools import Toolbox, ToolCall
from tests.conftest import ROOT


def config_text(**servers):
    return json.dumps({"mcpServers": servers})


TEST_SERVER = {"command": sys.executable, "args": ["-m", "tests.mcp_server"], "cwd": str(ROOT)}


@pytest.fixture(scope="module")
def hub():
    hub = McpHub(parse_config(config_text(test=TEST_SERVER, broken={"command": "/nonexistent/mcp-server"},
                                          away={"url": "http://127.0.0.1:9/mcp"})), call_timeout_s=20)
    hub.wait_ready(60)
    yield hub
    hub.close()


def test_the_hosts_file_is_read_like_claude_desktops():
    [stdio, http] = parse_config(config_text(files={"command": "uvx", "args": ["srv", "/x"], "env": {"K": "v"}},
                                             web={"url": "https://mcp.example.com/mcp"}))
    assert (stdio.command, stdio.args, stdio.env) == ("uvx", ("srv", "/x"), (("K", "v"),)) and http.url.endswith("/mcp")
    for bad, why in [("{", "not valid JSON"), ("[]", "mcpServers"), (config_text(x={"args": []}), "command"),
                     (config_text(x={"command": "a", "args": "b"}), "list of strings"),
                     (config_text(x={"url": "file:///etc"}), "url")]:
        with pytest.raises(McpConfigError, match=why):
            parse_config(bad)
    with pytest.raises(McpConfigError, match="cannot read"):
        load_config("/nonexistent/mcp.json")
    assert tool_name("my server", "do.it") == "my_server__do_it"


def test_a_stdio_servers_tools_are_listed_and_called(hub):
    state = hub.servers["test"]
    assert state.error is None and [tool.name for tool in state.tools] == ["add", "shout", "explode"]
    box = Toolbox(hub.tools({"test"}))
    assert [tool.name for tool in box.tools] == ["test__add", "test__shout", "test__explode"]
    assert box.tools[0].parameters["required"] == ["a", "b"] and box.tools[0].source == "test"
    assert box.run(ToolCall("c1", "test__add", '{"a": 2, "b": 40}')).result == "42"
    assert box.run(ToolCall("c2", "test__shout", '{"text": "hi"}')).result == "HI!"
    failed = box.run(ToolCall("c3", "test__explode", '{"reason": "boom"}'))
    assert failed.error and "explode" in failed.error


def test_a_failing_server_says_why_and_the_others_go_on(hub):
    broken, away = hub.servers["broken"], hub.servers["away"]
    assert broken.error and ("No such file" in broken.error or "FileNotFound" in broken.error)
    assert away.error and "Traceback" not in away.error
    assert [tool.source for tool in hub.tools()] == ["test"] * 3
    with pytest.raises(Exception, match="not connected"):
        hub.call("broken", "anything", {})
