"""MCP servers from the host's file (issue 11): a stdio server written with the `mcp` SDK, its tools called end
to end; a streamable-HTTP server behind a bearer token, reached with the file's headers; a server that fails says
why (never with a header's value) and the others go on."""
import json
import logging
import sys
import threading
import time

import pytest
import uvicorn

from atri.mcp_tools import McpConfigError, McpHub, _reason, _secret_parts, load_config, parse_config, resolve_headers, tool_name
from atri.tools import Toolbox, ToolCall
from tests.conftest import ROOT
from tests.mcp_server import http_app


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


# --- streamable HTTP with headers ------------------------------------------------------------------------

TOKEN = "atri-test-token-5f0c9e2b7d"
WRONG = "not-the-token-84c1a7"
hub_log: list[str] = []  # what the HTTP hub logged while connecting


@pytest.fixture(scope="module")
def http_url():
    """The test server over streamable HTTP (uvicorn on a free loopback port), refusing requests without the token."""
    server = uvicorn.Server(uvicorn.Config(http_app(TOKEN), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/mcp"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def http_hub(http_url):
    servers = {"keyed": {"url": http_url, "headers": {"Authorization": "Bearer ${ATRI_TEST_MCP_TOKEN}"}},
               "cursor": {"url": http_url, "headers": {"Authorization": "Bearer ${env:ATRI_TEST_MCP_TOKEN}"}},
               "keyless": {"url": http_url},
               "wrong": {"url": http_url, "headers": {"Authorization": f"Bearer {WRONG}"}},
               "unset": {"url": http_url, "headers": {"Authorization": "Bearer ${ATRI_TEST_UNSET}"}}}
    logged = logging.Handler(logging.WARNING)
    logged.emit = lambda record: hub_log.append(record.getMessage())
    logging.getLogger("atri.mcp_tools").addHandler(logged)
    try:
        hub = McpHub(parse_config(config_text(**servers)), call_timeout_s=20, environ={"ATRI_TEST_MCP_TOKEN": TOKEN})
        hub.wait_ready(60)
    finally:
        logging.getLogger("atri.mcp_tools").removeHandler(logged)
    yield hub
    hub.close()


def test_headers_are_read_as_strings_and_kept_out_of_the_configs_repr():
    [server] = parse_config(config_text(web={"url": "https://mcp.example.com/mcp", "headers": {"X-Key": "k-123456789"}}))
    assert server.headers == (("X-Key", "k-123456789"),) and "k-123456789" not in repr(server)
    for headers, why in [(["Bearer x"], "map header names to strings"), ({"Authorization": 1}, "to strings"),
                         ({"Bad Name": "x"}, "not a valid header name"), ({"X": "a\r\nInjected: y"}, "line break")]:
        with pytest.raises(McpConfigError, match=why):
            parse_config(config_text(web={"url": "https://mcp.example.com/mcp", "headers": headers}))
    with pytest.raises(McpConfigError, match="url"):
        parse_config(config_text(local={"command": "srv", "headers": {"X": "y"}}))


def test_header_values_name_environment_variables():
    headers = (("Authorization", "Bearer ${TOKEN}"), ("X-Both", "${env:A}-${B}"), ("X-Plain", "$A {B}"))
    assert resolve_headers(headers, {"TOKEN": "t", "A": "1", "B": "2"}) == {
        "Authorization": "Bearer t", "X-Both": "1-2", "X-Plain": "$A {B}"}
    with pytest.raises(McpConfigError, match="TOKEN, which is not set"):
        resolve_headers(headers[:1], {})


def test_a_url_server_reached_with_its_headers_lists_and_runs_its_tools(http_hub):
    for name in ("keyed", "cursor"):
        assert http_hub.servers[name].error is None
        assert [tool.name for tool in http_hub.servers[name].tools] == ["add", "shout", "explode"]
    box = Toolbox(http_hub.tools({"keyed"}))
    assert box.run(ToolCall("c1", "keyed__add", '{"a": 20, "b": 22}')).result == "42"
    assert box.run(ToolCall("c2", "keyed__shout", '{"text": "token"}')).result == "TOKEN!"


def test_a_refused_url_server_says_so_without_the_secret(http_hub):
    for name in ("keyless", "wrong"):
        state = http_hub.servers[name]
        assert state.client is None and not state.tools
        assert state.error.startswith("HTTP 401 Unauthorized: the server refused the connection")
        assert '"headers"' in state.error and any(state.error in line for line in hub_log)
    assert "ATRI_TEST_UNSET, which is not set" in http_hub.servers["unset"].error
    with pytest.raises(Exception, match="not connected") as refused:
        http_hub.call("wrong", "add", {})
    shown = [state.error or "" for state in http_hub.servers.values()] + [str(refused.value), repr(http_hub.servers)]
    assert not any(TOKEN in text or WRONG in text for text in shown + hub_log)


def test_a_variable_the_http_client_would_quote_in_its_error_is_refused_before_sending(http_url):
    hub = McpHub(parse_config(config_text(bad={"url": http_url, "headers": {"X-Key": "${ATRI_TEST_BAD}"}})),
                 environ={"ATRI_TEST_BAD": "leaky\nsecret-value"})
    try:
        hub.wait_ready(30)
        error = hub.servers["bad"].error
        assert "ATRI_TEST_BAD holds a line break" in error and "leaky" not in error and "secret" not in error
    finally:
        hub.close()


def test_a_failure_that_quotes_a_header_value_is_told_without_it():
    secret = "Bearer tok\x01en-3b8e5a9c"
    error = ValueError(f"Illegal header value {secret.encode()!r}")
    told = _reason(error, _secret_parts([secret, "Bearer plain-token-1234"]))
    assert told == "ValueError: Illegal header value b'***'"
    assert _reason(ValueError("sent Bearer plain-token-1234"), _secret_parts(["Bearer plain-token-1234"])) \
        == "ValueError: sent ***"
