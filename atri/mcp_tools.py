"""MCP servers the host configured, their tools offered to the model (the official `mcp` SDK).

The host lists servers in a JSON file (ATRI_MCP_CONFIG) shaped like Claude Desktop's:

    {"mcpServers": {"files": {"command": "uvx", "args": ["mcp-server-filesystem", "/srv/docs"], "env": {}},
                    "weather": {"url": "https://mcp.example.com/mcp",
                                "headers": {"Authorization": "Bearer ${WEATHER_TOKEN}"}}}}

`command` starts a stdio server; `url` reaches a streamable-HTTP one, sending its `headers` with every
request. A header value may name environment variables as `${NAME}` (or Cursor's `${env:NAME}`), read when
the server is connected, so that the file need hold no secret; header values are never logged, and a
server's failure is told without them. Visitors cannot add servers: only the host's file is read.
Each server is connected once per process, in its own task on one event loop that a background thread
runs (a stdio server is a process: starting it for every call would cost seconds). A server that cannot
start or answer says why in its status; the others and the chat go on.
A tool's name as the model sees it is `<server>__<tool>` (OpenAI allows [A-Za-z0-9_-], at most 64).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client import Transport
from mcp.client.streamable_http import streamable_http_client

from .tools import Tool, ToolError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 20.0
CALL_TIMEOUT_S = 60.0
HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)  # the SDK's own: a server may hold a response stream open
_NAME = re.compile(r"[^A-Za-z0-9_-]")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")  # an HTTP token (RFC 9110)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_VARIABLE = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)\}")


class McpConfigError(ValueError):
    """The host's MCP file cannot be used; the message says where."""


@dataclass(frozen=True)
class McpServerConfig:
    name: str
    command: str = ""
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    url: str = ""
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # as written: may hold a secret or ${NAME}


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise McpConfigError(f"{where} must be a list of strings")
    return tuple(value)


def _headers(raw: dict[str, Any], name: str) -> tuple[tuple[str, str], ...]:
    headers = raw.get("headers")
    if headers is None:
        return ()
    if raw.get("command"):
        raise McpConfigError(f"server {name!r}: headers are sent to a \"url\" server only")
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise McpConfigError(f"server {name!r}: headers must map header names to strings")
    for header, value in headers.items():
        if not _HEADER_NAME.match(header):
            raise McpConfigError(f"server {name!r}: {header[:40]!r} is not a valid header name")
        if _CONTROL.search(value):
            raise McpConfigError(f"server {name!r}: the value of header {header!r} holds a line break or control character")
    return tuple(headers.items())


def resolve_headers(headers: tuple[tuple[str, str], ...], environ: Mapping[str, str]) -> dict[str, str]:
    """The headers with each `${NAME}` replaced by that environment variable (McpConfigError if it is unset)."""
    def variable(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise McpConfigError(f"a header needs the environment variable {name}, which is not set")
        if _CONTROL.search(environ[name]):  # the HTTP client would refuse it, quoting the value in its error
            raise McpConfigError(f"the environment variable {name} holds a line break or another control character")
        return environ[name]

    return {header: _VARIABLE.sub(variable, value) for header, value in headers}


def parse_config(text: str) -> list[McpServerConfig]:
    """The servers of a Claude-Desktop-style file (`mcpServers`: name -> command/args/env or url)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise McpConfigError(f"not valid JSON (line {error.lineno}: {error.msg})") from None
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise McpConfigError("no \"mcpServers\" object")
    configs = []
    for name, raw in servers.items():
        if not isinstance(raw, dict) or not _NAME.sub("", name) or len(name) > 40:
            raise McpConfigError(f"server {name[:40]!r}: an object with a short name is needed")
        env = raw.get("env") or {}
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise McpConfigError(f"server {name!r}: env must map names to strings")
        command, url, headers = raw.get("command"), raw.get("url"), _headers(raw, name)
        if isinstance(command, str) and command:
            configs.append(McpServerConfig(name, command=command, args=_strings(raw.get("args"), f"{name}.args"),
                                           env=tuple(env.items()), cwd=raw.get("cwd") if isinstance(raw.get("cwd"), str) else None))
        elif isinstance(url, str) and url.startswith(("http://", "https://")):
            configs.append(McpServerConfig(name, url=url, headers=headers))
        else:
            raise McpConfigError(f"server {name!r}: needs a \"command\" (stdio) or an http(s) \"url\"")
    return configs


def load_config(path: str) -> list[McpServerConfig]:
    try:
        return parse_config(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise McpConfigError(f"cannot read {path}: {error.strerror or error}") from None


def tool_name(server: str, tool: str) -> str:
    return _NAME.sub("_", f"{server}__{tool}")[:64]


@dataclass(frozen=True)
class McpTool:
    server: str
    name: str  # the server's own name for it
    description: str
    parameters: dict[str, Any]

    @property
    def qualified(self) -> str:
        return tool_name(self.server, self.name)


@dataclass
class ServerState:
    config: McpServerConfig
    tools: list[McpTool] = field(default_factory=list)
    error: str | None = None
    client: Client | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    stop: asyncio.Event | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)  # the header values sent: kept out of every message
    refused: str | None = None  # the HTTP status a URL server refused the connection with (401, 403)

    @property
    def connecting(self) -> bool:
        return not self.ready.is_set()


def _secret_parts(values: Iterable[str]) -> tuple[str, ...]:
    """Each header value (also as Python quotes it), and each of its words but short ones such as a scheme
    ("Bearer", "Token")."""
    values = tuple(value for value in values if value)
    parts = set(values) | {repr(value)[1:-1] for value in values}
    parts |= {word for value in values for word in value.split() if len(word) > 6}
    return tuple(sorted(parts, key=len, reverse=True))


def _reason(error: BaseException, secrets: tuple[str, ...] = ()) -> str:
    """The first real failure inside anyio's exception groups, in one line (no traceback, no header value)."""
    while getattr(error, "exceptions", None):  # a BaseExceptionGroup
        error = error.exceptions[0]
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    for secret in secrets:
        text = text.replace(secret, "***")
    return f"{type(error).__name__}: {text}"[:300] if text else type(error).__name__


def _refusal(state: ServerState) -> str:
    """What a URL server's 401/403 means (the SDK only says "Server returned an error response")."""
    if state.refused is None:
        return ""
    return f"{state.refused}: the server refused the connection; check the \"headers\" of its entry in the MCP file"


def result_text(result: Any) -> str:
    """A tool result's content as text for the model (text parts as they are; others named)."""
    parts = []
    for item in getattr(result, "content", None) or []:
        text = getattr(item, "text", None)
        parts.append(text if isinstance(text, str) else f"[{getattr(item, 'type', 'content')}]")
    if not parts and getattr(result, "structured_content", None) is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


class McpHub:
    """The process's connections to the host's MCP servers, on one event loop in a background thread."""

    def __init__(self, configs: list[McpServerConfig], call_timeout_s: float = CALL_TIMEOUT_S,
                 environ: Mapping[str, str] | None = None) -> None:
        """`environ`: where a header's `${NAME}` is looked up (the process environment by default)."""
        self.call_timeout_s = call_timeout_s
        self._environ = os.environ if environ is None else environ
        self.servers = {config.name: ServerState(config) for config in configs}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="atri-mcp", daemon=True)
        self._thread.start()
        self._tasks = [asyncio.run_coroutine_threadsafe(self._serve(state), self._loop) for state in self.servers.values()]

    def wait_ready(self, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        """Wait (up to the timeout, for all at once) until every server has listed its tools or failed."""
        deadline = self._loop.time() + timeout_s
        for state in self.servers.values():
            state.ready.wait(max(0.0, deadline - self._loop.time()))

    async def _serve(self, state: ServerState) -> None:
        state.stop = asyncio.Event()
        config = state.config
        try:
            async with AsyncExitStack() as stack:
                target = await self._target(state, stack)
                client = await stack.enter_async_context(Client(target, read_timeout_seconds=self.call_timeout_s))
                listed = await client.list_tools()
                state.tools = [McpTool(config.name, tool.name, tool.description or "", dict(tool.input_schema or {}))
                               for tool in listed.tools]
                state.client, state.error = client, None
                state.ready.set()
                await state.stop.wait()
        except BaseException as error:  # noqa: BLE001 - a server's failure is its status, never the app's
            state.error = _refusal(state) or _reason(error, state.secrets)
            log.warning("MCP server %s: %s", config.name, state.error)
        finally:
            state.client = None
            state.ready.set()

    async def _target(self, state: ServerState, stack: AsyncExitStack) -> StdioServerParameters | Transport:
        """A stdio server's parameters, or the transport to a URL over an HTTP client that sends its headers."""
        config = state.config
        if not config.url:
            return StdioServerParameters(command=config.command, args=list(config.args), env=dict(config.env) or None,
                                         cwd=config.cwd)
        headers = resolve_headers(config.headers, self._environ)
        state.secrets = _secret_parts(headers.values())

        async def note_refusal(response: httpx2.Response) -> None:
            if response.status_code in (401, 403) and state.client is None:
                state.refused = f"HTTP {response.status_code} {response.reason_phrase}"

        http = await stack.enter_async_context(httpx2.AsyncClient(headers=headers, timeout=HTTP_TIMEOUT,
                                                                  event_hooks={"response": [note_refusal]}))
        return streamable_http_client(config.url, http_client=http)

    def call(self, server: str, tool: str, arguments: dict[str, Any]) -> str:
        state = self.servers.get(server)
        client = state.client if state else None
        if client is None:
            raise ToolError(f"the MCP server {server!r} is not connected" + (f" ({state.error})" if state and state.error else ""))
        future = asyncio.run_coroutine_threadsafe(client.call_tool(tool, arguments), self._loop)
        try:
            result = future.result(self.call_timeout_s + 5)
        except TimeoutError:
            future.cancel()
            raise ToolError(f"the MCP tool {tool!r} did not answer in {self.call_timeout_s:.0f} s") from None
        except Exception as error:  # noqa: BLE001 - the server's failure, told to the model
            raise ToolError(f"the MCP server {server!r} failed: {_reason(error, state.secrets)}") from None
        text = result_text(result)
        if getattr(result, "is_error", False):
            raise ToolError(text or "the tool reported an error")
        return text

    def tools(self, servers: set[str] | None = None) -> list[Tool]:
        """The connected servers' tools as the model is offered them (`servers`: only these)."""
        made = []
        for state in self.servers.values():
            if state.client is None or (servers is not None and state.config.name not in servers):
                continue
            for tool in state.tools:
                made.append(Tool(tool.qualified, f"[{tool.server}] {tool.description}"[:1024],
                                 tool.parameters or {"type": "object", "properties": {}},
                                 lambda arguments, s=tool.server, n=tool.name: self.call(s, n, arguments),
                                 source=tool.server))
        return made

    def close(self) -> None:
        for state in self.servers.values():
            if state.stop is not None:
                self._loop.call_soon_threadsafe(state.stop.set)
        for task in self._tasks:
            try:
                task.result(10)
            except Exception:  # noqa: BLE001 - closing: whatever a server does now does not matter
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
