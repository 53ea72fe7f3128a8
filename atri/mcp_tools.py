"""MCP servers the host configured, their tools offered to the model (the official `mcp` SDK).

The host lists servers in a JSON file (ATRI_MCP_CONFIG, read by atri.mcp_config). `command` starts a stdio
server; `url` reaches a streamable-HTTP one (or, with `"type": "sse"`, a legacy SSE one), sending its `headers`
with every request. A header value may name environment variables as `${NAME}` (or Cursor's `${env:NAME}`),
read when the server is connected, so that the file need hold no secret; header values are never logged, and a
server's failure is told without them. Visitors cannot add servers: only the host's file is read.
Each server is connected once per process, in its own task on one event loop that a background thread
runs (a stdio server is a process: starting it for every call would cost seconds). A server that cannot
start or answer says why in its status (with the last lines a stdio server printed on stderr); the others and the
chat go on. A server that stops or drops its connection is marked so at once, and connected again on the next
use of the hub, after a wait that doubles with each failure in a row (1 s, 2 s, ... at most 5 minutes).
A tool's name as the model sees it is `<server>__<tool>` (OpenAI allows [A-Za-z0-9_-], at most 64). A tool the
server marks destructive, or the host lists under "approve", asks the visitor before each call (atri.approval).
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client import Transport
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from .mcp_config import McpConfigError, McpServerConfig, load_config, parse_config, resolve_headers, tool_name
from .mcp_results import McpImage, McpResult, result_of, result_text
from .tool_images import Pictured
from .tools import Tool, ToolError

__all__ = ["McpConfigError", "McpHub", "McpImage", "McpResult", "McpServerConfig", "McpTool", "ServerState",
           "load_config", "parse_config", "resolve_headers", "result_of", "result_text", "tool_name"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 20.0
CALL_TIMEOUT_S = 60.0
RETRY_FIRST_S = 1.0  # a server that failed twice in a row waits this long before the next try (once: none) ...
RETRY_MOST_S = 300.0  # ... doubled with each further failure, up to this
CLOSE_WAIT_S = 5.0  # how long a use waits for a lost connection to finish closing before connecting again
REVIVE_WAIT_S = 5.0  # how long a use that connects a server again waits for it (then it says "connecting")
STDERR_KEPT = 4096  # bytes of a stdio server's stderr kept to say why it failed
HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)  # the SDK's own: a server may hold a response stream open


@dataclass(frozen=True)
class McpTool:
    server: str
    name: str  # the server's own name for it
    description: str
    parameters: dict[str, Any]
    read_only: bool = False  # the server's hints (annotations), not guarantees
    destructive: bool = False
    idempotent: bool = False

    @property
    def qualified(self) -> str:
        return tool_name(self.server, self.name)

    @property
    def repeatable(self) -> bool:
        """Whether a call that may or may not have reached the server can be sent again."""
        return self.read_only or (self.idempotent and not self.destructive)


def _mcp_tool(server: str, tool: Any) -> McpTool | None:
    """A listed tool as the model is offered it; None for one that can only run as a task (which Atri does not
    start: such a call is refused)."""
    if getattr(getattr(tool, "execution", None), "task_support", None) == "required":
        return None
    hints = getattr(tool, "annotations", None)
    return McpTool(server, tool.name, tool.description or "", dict(tool.input_schema or {}),
                   read_only=bool(getattr(hints, "read_only_hint", False)),
                   destructive=bool(getattr(hints, "destructive_hint", False) and not getattr(hints, "read_only_hint", False)),
                   idempotent=bool(getattr(hints, "idempotent_hint", False)))


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
    session_lost: bool = False  # a URL server no longer knows the session (restarted): connect again
    failures: int = 0  # connections lost or refused in a row
    retry_at: float = 0.0  # time.monotonic() after which the next use connects again
    hidden: int = 0  # task-only tools, not offered
    stderr: deque[bytes] = field(default_factory=lambda: deque(maxlen=64), repr=False)  # a stdio server's last output
    connected_at: float = 0.0
    task: Any = field(default=None, repr=False)  # the concurrent Future of its connection's task
    serving: bool = False  # its connection's task is running (until just before `ready` is set at its end)

    @property
    def connecting(self) -> bool:
        return not self.ready.is_set()

    @property
    def retry_in(self) -> float | None:
        """Seconds until a failed server is tried again on the next use (0: now); None while it is up."""
        return None if self.client is not None or self.connecting else max(0.0, self.retry_at - time.monotonic())

    def stderr_tail(self) -> str:
        """The last lines the server printed on stderr, in one line (secrets out)."""
        text = b"".join(self.stderr)[-STDERR_KEPT:].decode("utf-8", "replace")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        told = " | ".join(lines[-3:])
        for secret in self.secrets:
            told = told.replace(secret, "***")
        return told[-300:]


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


_GONE = (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, httpx2.TransportError,
         ConnectionError, EOFError)


def _connection_lost(error: BaseException) -> bool:
    """Whether a call failed because the server's connection is gone (not because the tool failed)."""
    while getattr(error, "exceptions", None):
        error = error.exceptions[0]
    if isinstance(error, httpx2.TimeoutException):  # a slow server, still there
        return False
    if isinstance(error, _GONE):
        return True
    text = str(error).lower()
    return "connection closed" in text or "session not found" in text or "session terminated" in text


class _StderrTail(asyncio.Protocol):
    """Keeps the last of what a stdio server prints on stderr (to say why it stopped) and passes it on to
    the host's stderr, where it went before."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def data_received(self, data: bytes) -> None:
        self.state.stderr.append(data[-STDERR_KEPT:])
        try:
            sys.stderr.write(data.decode("utf-8", "replace"))
        except (OSError, ValueError):  # a closed or missing stderr
            pass


@asynccontextmanager
async def _watched(transport: Any, on_end: Callable[[], None]) -> AsyncIterator[Any]:
    """The transport with its incoming stream watched: when the server's side ends (a process that exited, a
    stream that closed), `on_end` is called at once rather than at the next call."""
    async with transport as (read, write):
        forward, incoming = anyio.create_memory_object_stream[Any](0)

        async def pump() -> None:
            try:
                async with forward:
                    async for message in read:
                        await forward.send(message)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
                pass
            finally:
                on_end()

        async with anyio.create_task_group() as group:
            group.start_soon(pump)
            try:
                yield incoming, write
            finally:
                group.cancel_scope.cancel()


class McpHub:
    """The process's connections to the host's MCP servers, on one event loop in a background thread."""

    def __init__(self, configs: list[McpServerConfig], call_timeout_s: float = CALL_TIMEOUT_S,
                 environ: Mapping[str, str] | None = None) -> None:
        """`environ`: where a header's `${NAME}` is looked up (the process environment by default)."""
        self.call_timeout_s = call_timeout_s
        self._environ = os.environ if environ is None else environ
        self._servers = {config.name: ServerState(config) for config in configs}
        self._lock = threading.Lock()
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="atri-mcp", daemon=True)
        self._thread.start()
        for state in self._servers.values():
            self._start(state)

    @property
    def servers(self) -> dict[str, ServerState]:
        """Each server's state, by name. Reading it is a use: a failed server whose wait is over is connected
        again, and waited for a few seconds (then its state says "connecting" until it is up or failed again)."""
        self._wait_for(self.revive(), REVIVE_WAIT_S)
        return self._servers

    def wait_ready(self, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        """Wait (up to the timeout, for all at once) until every server has listed its tools or failed."""
        self._wait_for(list(self._servers.values()), timeout_s)

    @staticmethod
    def _wait_for(states: list[ServerState], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for state in states:
            state.ready.wait(max(0.0, deadline - time.monotonic()))

    def revive(self, names: Iterable[str] | None = None) -> list[ServerState]:
        """Connect again the failed servers (these, or all) whose wait since their last failure is over; returns
        those being connected."""
        states = [self._servers[name] for name in (self._servers if names is None else names) if name in self._servers]
        return [state for state in states if state.retry_in == 0.0 and self._restart(state)]

    def _restart(self, state: ServerState) -> bool:
        if state.serving and state.client is None and not state.connecting:  # a lost connection, still closing
            try:
                state.task.result(CLOSE_WAIT_S)
            except Exception:  # noqa: BLE001 - how the old connection ended is already its state
                pass
        with self._lock:
            if (self._closed or state.client is not None or state.connecting or time.monotonic() < state.retry_at
                    or state.serving):  # the last connection is still closing
                return False
            self._start(state)
            return True

    def _start(self, state: ServerState) -> Any:
        state.ready.clear()  # before the task runs: a caller that waits for it sees it connecting
        state.serving = True
        state.task = asyncio.run_coroutine_threadsafe(self._serve(state), self._loop)
        return state.task

    async def _serve(self, state: ServerState) -> None:
        state.stop = asyncio.Event()
        state.refused, state.session_lost = None, False
        config = state.config
        ended = asyncio.Event()
        try:
            async with AsyncExitStack() as stack:
                target = await self._target(state, stack)
                watched = _watched(target, ended.set)
                client = await stack.enter_async_context(Client(watched, read_timeout_seconds=self.call_timeout_s))
                listed = await client.list_tools()
                offered = [_mcp_tool(config.name, tool) for tool in listed.tools]
                state.tools = [tool for tool in offered if tool is not None]
                state.hidden = len(offered) - len(state.tools)
                state.client, state.error, state.connected_at = client, None, time.monotonic()
                state.stderr.clear()  # from now on, what it prints is why it stops (its start-up banner is not)
                state.ready.set()
                stopped, lost = asyncio.ensure_future(state.stop.wait()), asyncio.ensure_future(ended.wait())
                await asyncio.wait([stopped, lost], return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel(), lost.cancel()
                state.client = None  # offered no more from this moment, while the connection is closed
                if not state.stop.is_set():
                    state.error = self._stopped(state)
                    await asyncio.sleep(0.2)  # what it printed as it stopped reaches the stderr reader
                    state.error = self._stopped(state)
        except BaseException as error:  # noqa: BLE001 - a server's failure is its status, never the app's
            tail = state.stderr_tail()
            reason = _refusal(state) or _reason(error, state.secrets)
            state.error = f"{tail} ({reason})" if tail and not state.refused else reason
        finally:
            state.client = None
            if state.error and not state.stop.is_set():
                self._failed(state)
            state.serving = False
            state.ready.set()

    def _stopped(self, state: ServerState) -> str:
        tail = state.stderr_tail()
        return f"the server stopped: {tail}" if tail else "the server stopped (its connection closed)"

    def _failed(self, state: ServerState) -> None:
        state.failures += 1
        state.retry_at = time.monotonic() + _backoff(state.failures)
        wait = state.retry_at - time.monotonic()
        log.warning("MCP server %s: %s (connected again on the next use%s)", state.config.name, state.error,
                    f", {wait:.0f} s from now or later" if wait >= 1 else "")

    async def _target(self, state: ServerState, stack: AsyncExitStack) -> Transport:
        """The transport to the server: a stdio process with its stderr kept, or a URL over an HTTP client that
        sends its headers."""
        config = state.config
        if config.transport == "stdio":
            return await self._stdio(state, stack)
        headers = resolve_headers(config.headers, self._environ)
        state.secrets = _secret_parts(headers.values())

        async def note_refusal(response: httpx2.Response) -> None:
            if response.status_code in (401, 403) and state.client is None:
                state.refused = f"HTTP {response.status_code} {response.reason_phrase}"
            # A restarted server does not know the session it is sent: 404 by the spec, 400 from some servers
            if response.status_code in (400, 404) and "mcp-session-id" in response.request.headers:
                state.session_lost = True

        def http_client(headers: dict[str, str] | None = None, timeout: httpx2.Timeout | None = None,
                        auth: httpx2.Auth | None = None) -> httpx2.AsyncClient:
            return httpx2.AsyncClient(headers=headers, timeout=timeout or HTTP_TIMEOUT, auth=auth,
                                      event_hooks={"response": [note_refusal]})

        if config.transport == "sse":
            return sse_client(config.url, headers=headers, timeout=HTTP_TIMEOUT.connect or 30.0,
                              sse_read_timeout=HTTP_TIMEOUT.read or 300.0, httpx_client_factory=http_client)
        http = await stack.enter_async_context(http_client(headers))
        return streamable_http_client(config.url, http_client=http)

    async def _stdio(self, state: ServerState, stack: AsyncExitStack) -> Transport:
        """The stdio transport, with the process's stderr read into the state (a pipe: what a chatty server
        prints over weeks is never kept whole)."""
        config = state.config
        state.stderr.clear()
        read_end, write_end = os.pipe()
        reader = os.fdopen(read_end, "rb")
        errlog = os.fdopen(write_end, "w")
        pipe, _ = await self._loop.connect_read_pipe(lambda: _StderrTail(state), reader)
        stack.callback(pipe.close)
        stack.callback(errlog.close)  # the server has its own copy once started; closed on failure too
        parameters = StdioServerParameters(command=config.command, args=list(config.args), env=dict(config.env) or None,
                                           cwd=config.cwd)
        return _closing_errlog(stdio_client(parameters, errlog=errlog), errlog)

    def call(self, server: str, tool: str, arguments: dict[str, Any]) -> str:
        """What the model reads of a tool's result; raises ToolError."""
        output = self.output(server, tool, arguments)
        return output.text if isinstance(output, Pictured) else output

    def output(self, server: str, tool: str, arguments: dict[str, Any]) -> str | Pictured:
        """A tool's result as a Toolbox reads it: its text, with the images it returned; raises ToolError."""
        result = self.call_result(server, tool, arguments)
        if result.error:
            raise ToolError(result.text or "the tool reported an error")
        return Pictured(result.text, result.images) if result.images else result.text

    def call_result(self, server: str, tool: str, arguments: dict[str, Any]) -> McpResult:
        """A tool's result in full (images as data). A server that is down but due is connected first; a call
        whose connection was lost is sent again once, on a new connection, when the tool says it is read-only
        or idempotent. Raises ToolError."""
        state = self._servers.get(server)
        if state is None:
            raise ToolError(f"the MCP server {server!r} is not connected")
        self._ensure(state)
        try:
            return self._call_once(state, tool, arguments)
        except _Lost as lost:
            known = next((t for t in state.tools if t.name == tool), None)
            if known is None or not known.repeatable:
                raise ToolError(f"the MCP server {server!r} lost its connection during the call ({lost}); "
                                "it is connected again for the next one") from None
            self._ensure(state)
            try:
                return self._call_once(state, tool, arguments)
            except _Lost as again:
                raise ToolError(f"the MCP server {server!r} failed: {again}") from None

    def _ensure(self, state: ServerState) -> None:
        """A server that is down is connected again now if its wait is over, and waited for (up to the
        connection timeout); then it answers or says why not."""
        if state.client is None:
            self._restart(state)
            state.ready.wait(CONNECT_TIMEOUT_S)
        if state.client is None:
            raise ToolError(f"the MCP server {state.config.name!r} is not connected"
                            + (f" ({state.error})" if state.error else ""))

    def _call_once(self, state: ServerState, tool: str, arguments: dict[str, Any]) -> McpResult:
        client = state.client
        if client is None:
            raise _Lost(state.error or "not connected")
        future = asyncio.run_coroutine_threadsafe(client.call_tool(tool, arguments), self._loop)
        try:
            result = future.result(self.call_timeout_s + 5)
        except TimeoutError:
            future.cancel()
            raise ToolError(f"the MCP tool {tool!r} did not answer in {self.call_timeout_s:.0f} s") from None
        except Exception as error:  # noqa: BLE001 - the server's failure, told to the model
            reason = _reason(error, state.secrets)
            if _connection_lost(error) or state.session_lost:
                self._drop(state, reason)
                raise _Lost(reason) from None
            raise ToolError(f"the MCP server {state.config.name!r} failed: {reason}") from None
        state.failures = 0
        return result_of(result)

    def _drop(self, state: ServerState, reason: str) -> None:
        """Close a connection found dead by a call (an HTTP server that went away says so only then); the
        next use connects again (at once the first time)."""
        task, stop = state.task, state.stop
        if state.client is None or task is None or stop is None:
            return
        state.client = None
        self._loop.call_soon_threadsafe(stop.set)
        try:
            task.result(10)
        except Exception:  # noqa: BLE001 - closing a dead connection: how it ends does not matter
            pass
        state.error = f"the connection was lost: {reason}"
        state.failures += 1
        state.retry_at = time.monotonic() + _backoff(state.failures)

    def tools(self, servers: set[str] | None = None) -> list[Tool]:
        """The connected servers' tools as the model is offered them (`servers`: only these). A use: a failed
        server whose wait is over is connected again, and waited for a few seconds."""
        self._wait_for(self.revive(servers), REVIVE_WAIT_S)
        made = []
        for state in self._servers.values():
            if state.client is None or (servers is not None and state.config.name not in servers):
                continue
            for tool in state.tools:
                made.append(Tool(tool.qualified, f"[{tool.server}] {tool.description}"[:1024],
                                 tool.parameters or {"type": "object", "properties": {}},
                                 lambda arguments, s=tool.server, n=tool.name: self.output(s, n, arguments),
                                 source=tool.server, asks_first=tool.destructive or state.config.asks_first(tool.name)))
        return made

    def close(self) -> None:
        with self._lock:
            self._closed = True
        for state in self._servers.values():
            if state.stop is not None:
                self._loop.call_soon_threadsafe(state.stop.set)
        for state in self._servers.values():
            try:
                state.task.result(10)
            except Exception:  # noqa: BLE001 - closing: whatever a server does now does not matter
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)


def _backoff(failures: int) -> float:
    """Seconds before the next try after `failures` failures in a row: none after one, then 1, 2, 4, ..."""
    return 0.0 if failures <= 1 else min(RETRY_FIRST_S * 2 ** (failures - 2), RETRY_MOST_S)


class _Lost(Exception):
    """A call failed because the server's connection is gone."""


@asynccontextmanager
async def _closing_errlog(transport: Any, errlog: Any) -> AsyncIterator[Any]:
    """stdio_client, closing this process's copy of the stderr pipe once the server has started (so that the
    pipe ends when the server does)."""
    async with transport as streams:
        errlog.close()
        yield streams
