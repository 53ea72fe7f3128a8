"""MCP servers from the host's file (issue 11): a stdio server written with the `mcp` SDK, its tools called end
to end; a streamable-HTTP server behind a bearer token, reached with the file's headers; a server that fails says
why (never with a header's value) and the others go on. Issue 32: real servers from the registries
(`mcp-server-time` from PyPI, `@modelcontextprotocol/server-everything` from npm over stdio, streamable HTTP and
SSE), results in full (images as data, resources, links), task-only tools not offered, and servers that stop
marked with what they printed and connected again on the next use."""
import base64
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from atri.mcp_tools import (
    McpConfigError,
    McpHub,
    _mcp_tool,
    _reason,
    _secret_parts,
    load_config,
    parse_config,
    resolve_headers,
    result_of,
    tool_name,
)
from atri.tools import Toolbox, ToolCall
from tests.conftest import ROOT
from tests.mcp_server import http_app


def config_text(**servers):
    return json.dumps({"mcpServers": servers})


TEST_SERVER = {"command": sys.executable, "args": ["-m", "tests.mcp_server"], "cwd": str(ROOT)}
TEST_TOOLS = ["add", "shout", "explode"]


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
    assert state.error is None and [tool.name for tool in state.tools] == TEST_TOOLS
    box = Toolbox(hub.tools({"test"}))
    assert [tool.name for tool in box.tools] == [f"test__{name}" for name in TEST_TOOLS]
    assert box.tools[0].parameters["required"] == ["a", "b"] and box.tools[0].source == "test"
    assert box.run(ToolCall("c1", "test__add", '{"a": 2, "b": 40}')).result == "42"
    assert box.run(ToolCall("c2", "test__shout", '{"text": "hi"}')).result == "HI!"
    failed = box.run(ToolCall("c3", "test__explode", '{"reason": "boom"}'))
    assert failed.error and "explode" in failed.error


def test_a_failing_server_says_why_and_the_others_go_on(hub):
    broken, away = hub.servers["broken"], hub.servers["away"]
    assert broken.error and ("No such file" in broken.error or "FileNotFound" in broken.error)
    assert away.error and "Traceback" not in away.error
    assert [tool.source for tool in hub.tools()] == ["test"] * len(TEST_TOOLS)
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
        assert [tool.name for tool in http_hub.servers[name].tools] == TEST_TOOLS
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


# --- servers that stop, and come back (issue 32) -----------------------------------------------------------

def test_the_type_of_a_url_server_chooses_its_transport():
    servers = parse_config(config_text(a={"url": "https://x.example/mcp"}, b={"type": "sse", "url": "https://x.example/sse"},
                                       c={"type": "http", "url": "https://x.example/mcp"},
                                       d={"type": "stdio", "command": "srv"}))
    assert [server.transport for server in servers] == ["http", "sse", "http", "stdio"]
    for bad, why in [({"type": "websocket", "url": "https://x.example"}, '"type" is one of'),
                     ({"type": "sse", "command": "srv"}, "fits its"), ({"type": "stdio", "url": "https://x.example"}, "fits its")]:
        with pytest.raises(McpConfigError, match=why):
            parse_config(config_text(x=bad))


def test_results_come_in_full_images_as_data_resources_as_text_links_with_their_names():
    import mcp_types as types
    png = b"\x89PNG\r\n\x1a\n" + bytes(40)
    result = types.CallToolResult(content=[
        types.TextContent(text="Here it is:"),
        types.ImageContent(data=base64.b64encode(png).decode(), mime_type="image/png"),
        types.EmbeddedResource(resource=types.TextResourceContents(uri="file:///notes.txt", text="Buy milk.")),
        types.EmbeddedResource(resource=types.BlobResourceContents(uri="file:///a.bin", blob="AAAA", mime_type="application/zip")),
        types.ResourceLink(name="Quarterly report", uri="https://example.com/q3.pdf", description="the Q3 numbers"),
        types.TextContent(text="for your eyes", annotations=types.Annotations(audience=["user"])),
        types.ImageContent(data="not base64!", mime_type="image/png")])
    told = result_of(result)
    assert [image.data for image in told.images] == [png] and told.images[0].mime_type == "image/png"
    assert told.text.splitlines() == [
        "Here it is:", "[image 1: image/png, 0.0 KB]", "Resource file:///notes.txt:", "Buy milk.",
        "[resource file:///a.bin: application/zip, 0.0 KB, not shown]",
        "[Quarterly report](https://example.com/q3.pdf): the Q3 numbers", "[image: image/png, too big or not valid base64]"]
    assert told.shown == "for your eyes" and not told.error


def test_a_task_only_tool_is_not_offered():
    import mcp_types as types
    schema = {"type": "object"}
    assert _mcp_tool("s", types.Tool(name="t", input_schema=schema, execution=types.ToolExecution(task_support="required"))) is None
    tool = _mcp_tool("s", types.Tool(name="t", input_schema=schema, execution=types.ToolExecution(task_support="optional"),
                                     annotations=types.ToolAnnotations(destructive_hint=True)))
    assert tool is not None and tool.destructive and not tool.repeatable


def test_a_stdio_server_that_exits_is_marked_with_what_it_printed_and_back_on_the_next_use():
    crashable = {**TEST_SERVER, "args": [*TEST_SERVER["args"], "--crashable"]}
    hub = McpHub(parse_config(config_text(test=crashable)), call_timeout_s=20)
    try:
        hub.wait_ready(60)
        box = Toolbox(hub.tools({"test"}))
        first = box.run(ToolCall("c1", "test__pid", "{}")).result
        died = box.run(ToolCall("c2", "test__crash", '{"reason": "the disk is full"}'))
        assert died.error and "test" in died.error
        state = hub._servers["test"]
        deadline = time.monotonic() + 10
        while "the disk is full" not in (state.error or "") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state.client is None and state.error == "the server stopped: fatal: the disk is full", "the sidebar reads why"
        assert state.retry_in == 0.0, "the first failure is tried again at once, on the next use"
        assert hub.servers["test"].client is not None, "the next use (the sidebar reading the states) restarts it"
        again = Toolbox(hub.tools({"test"})).run(ToolCall("c3", "test__pid", "{}"))
        assert again.error is None and again.result != first, "a new process answers"
        assert state.error is None and state.failures == 0
    finally:
        hub.close()


def test_a_server_that_keeps_failing_is_tried_again_less_and_less_often():
    crashy = {"command": "sh", "args": ["-c", "echo 'fatal: GITHUB_TOKEN is not set' >&2; exit 3"]}
    hub = McpHub(parse_config(config_text(crashy=crashy)))
    try:
        hub.wait_ready(30)
        state = hub._servers["crashy"]
        assert state.error.startswith("fatal: GITHUB_TOKEN is not set (") and state.failures == 1
        assert hub.servers["crashy"].client is None  # a use: tried again at once, and failed again
        assert state.failures == 2 and 0.5 < state.retry_in <= 1.0
        assert hub.servers["crashy"].client is None  # too soon: not tried
        assert state.failures == 2
        time.sleep(state.retry_in + 0.05)
        assert hub.servers["crashy"].client is None and state.failures == 3 and 1.5 < state.retry_in <= 2.0
        with pytest.raises(Exception, match="GITHUB_TOKEN is not set"):
            hub.call("crashy", "anything", {})
    finally:
        hub.close()


def test_mcp_server_time_from_pypi_is_called_end_to_end():
    hub = McpHub(parse_config(config_text(time={"command": sys.executable, "args": ["-m", "mcp_server_time"]})))
    try:
        hub.wait_ready(60)
        assert hub.servers["time"].error is None
        box = Toolbox(hub.tools({"time"}))
        assert {"time__get_current_time", "time__convert_time"} <= {tool.name for tool in box.tools}
        now = json.loads(box.run(ToolCall("c1", "time__get_current_time", '{"timezone": "Asia/Shanghai"}')).result)
        assert now["timezone"] == "Asia/Shanghai" and now["datetime"].endswith("+08:00")
        converted = json.loads(box.run(ToolCall("c2", "time__convert_time", json.dumps(
            {"source_timezone": "Europe/London", "time": "12:00", "target_timezone": "Asia/Tokyo"}))).result)
        assert converted["target"]["datetime"][11:16] in ("20:00", "21:00")
        assert box.run(ToolCall("c3", "time__get_current_time", '{"timezone": "Mars/Olympus"}')).error
    finally:
        hub.close()


# --- @modelcontextprotocol/server-everything from npm: stdio, streamable HTTP, SSE -------------------------

SERVERS_DIR = Path(os.environ.get("MCP_TEST_SERVERS") or Path.home() / ".cache" / "atri-test-servers")
NPM_DIR = ROOT / "tests" / "data" / "npm"  # package.json and package-lock.json: what .ci/run installs with npm ci


@pytest.fixture(scope="module")
def everything() -> str:
    """The server's command, installed from the npm registry into SERVERS_DIR if it is not there yet."""
    command = SERVERS_DIR / "node_modules" / ".bin" / "mcp-server-everything"
    if not command.exists():
        if not shutil.which("npm") or not shutil.which("node"):
            pytest.skip("Node.js and npm are needed for @modelcontextprotocol/server-everything (apt-get install nodejs npm)")
        SERVERS_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(NPM_DIR / name, SERVERS_DIR / name)
        installed = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=SERVERS_DIR, capture_output=True,
                                   text=True, timeout=600)
        if installed.returncode != 0:
            pytest.skip(f"npm ci of tests/data/npm failed: {installed.stderr.strip()[-300:]}")
    return str(command)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_everything(command: str, transport: str, port: int) -> subprocess.Popen:
    """The server on 127.0.0.1:port over HTTP ("streamableHttp" or "sse"), once it listens."""
    process = subprocess.Popen([command, transport], env={**os.environ, "PORT": str(port)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"server-everything ({transport}) did not listen on port {port}")


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def asks_everything(hub: McpHub, name: str) -> None:
    """What a question would use: text, an image as data, a resource's text, links with their names."""
    state = hub.servers[name]
    assert state.error is None, state.error
    names = [tool.name for tool in state.tools]
    assert {"echo", "get-tiny-image", "get-resource-links"} <= set(names)
    assert "simulate-research-query" not in names and state.hidden == 1, "the task-only tool is not offered"
    assert Toolbox(hub.tools({name})).run(ToolCall("c1", f"{name}__echo", '{"message": "你好"}')).result == "Echo: 你好"
    image = hub.call_result(name, "get-tiny-image", {})
    assert image.images[0].mime_type == "image/png" and image.images[0].data.startswith(b"\x89PNG")
    assert "[image 1: image/png" in image.text
    linked = hub.call(name, "get-resource-links", {"count": 2})
    assert "[Text Resource 2](demo://resource/dynamic/text/2)" in linked
    embedded = hub.call(name, "get-resource-reference", {"resourceType": "Text", "resourceId": 1})
    assert "Resource demo://resource/dynamic/text/1:\nResource 1: This is a plaintext resource" in embedded


def test_server_everything_over_stdio_killed_mid_session_is_back_for_the_next_question(everything):
    hub = McpHub(parse_config(config_text(everything={"command": everything, "args": ["stdio"]})))
    try:
        hub.wait_ready(60)
        asks_everything(hub, "everything")
        [server] = [pid for pid in children(os.getpid()) if b"mcp-server-everything" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        os.kill(server, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while hub._servers["everything"].error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hub._servers["everything"].client is None
        assert hub._servers["everything"].error == "the server stopped (its connection closed)"
        box = Toolbox(hub.tools({"everything"}))  # the next question: the tools are offered again
        assert box.run(ToolCall("c2", "everything__echo", '{"message": "back"}')).result == "Echo: back"
    finally:
        hub.close()


@pytest.mark.parametrize(("transport", "entry"), [("streamableHttp", lambda port: {"url": f"http://127.0.0.1:{port}/mcp"}),
                                                  ("sse", lambda port: {"type": "sse", "url": f"http://127.0.0.1:{port}/sse"})])
def test_server_everything_over_http_restarted_mid_session_is_reconnected(everything, transport, entry):
    port = free_port()
    process = serve_everything(everything, transport, port)
    hub = McpHub(parse_config(config_text(everything=entry(port))))
    try:
        hub.wait_ready(60)
        asks_everything(hub, "everything")
        process.kill()
        process.wait()
        process = serve_everything(everything, transport, port)  # the same address, a new process: no session
        box = Toolbox(hub.tools({"everything"}))
        assert box.run(ToolCall("c2", "everything__echo", '{"message": "again"}')).result == "Echo: again"
        assert hub.servers["everything"].error is None
    finally:
        hub.close()
        process.kill()
        process.wait()
