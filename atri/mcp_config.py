"""The host's MCP file (ATRI_MCP_CONFIG), shaped like Claude Desktop's: which servers, how to reach them.

    {"mcpServers": {"files": {"command": "uvx", "args": ["mcp-server-filesystem", "/srv/docs"], "env": {}},
                    "weather": {"url": "https://mcp.example.com/mcp",
                                "headers": {"Authorization": "Bearer ${WEATHER_TOKEN}"}},
                    "legacy": {"type": "sse", "url": "https://old.example.com/sse"}}}

`"type"` is optional: a `command` is a stdio server, a `url` a streamable-HTTP one unless the type says "sse".
`"approve"` (Atri's own) lists the server's tools that run only once the visitor approves each call, or says
`"all"`; tools the server itself marks destructive ask first anyway (atri.approval).
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRANSPORTS = ("stdio", "http", "sse")
_TYPES = {"stdio": "stdio", "http": "http", "streamable-http": "http", "streamable_http": "http",
          "streamableHttp": "http", "sse": "sse"}  # what hosts' files call them (Claude Code, Cursor, VS Code)
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
    transport: str = "stdio"  # one of TRANSPORTS
    approve: tuple[str, ...] | None = ()  # the tools that ask the visitor first (the server's own names); None: all

    def asks_first(self, tool: str) -> bool:
        """Whether the host listed this tool (or all of the server's) as asking the visitor before it runs."""
        return self.approve is None or tool in self.approve


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


def _approve(raw: dict[str, Any], name: str) -> tuple[str, ...] | None:
    approve = raw.get("approve")
    if approve == "all":
        return None
    if approve is not None and not (isinstance(approve, list) and all(isinstance(tool, str) for tool in approve)):
        raise McpConfigError(f"server {name!r}: \"approve\" is \"all\" or a list of the server's tool names")
    return tuple(approve or ())


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
        command, url, headers, approve = raw.get("command"), raw.get("url"), _headers(raw, name), _approve(raw, name)
        kind = raw.get("type")
        if kind is not None and _TYPES.get(kind) is None:
            raise McpConfigError(f"server {name!r}: \"type\" is one of {', '.join(sorted(_TYPES))}")
        if isinstance(command, str) and command and _TYPES.get(kind, "stdio") == "stdio":
            configs.append(McpServerConfig(name, command=command, args=_strings(raw.get("args"), f"{name}.args"),
                                           env=tuple(env.items()), cwd=raw.get("cwd") if isinstance(raw.get("cwd"), str) else None,
                                           approve=approve))
        elif isinstance(url, str) and url.startswith(("http://", "https://")) and _TYPES.get(kind, "http") != "stdio":
            configs.append(McpServerConfig(name, url=url, headers=headers, transport=_TYPES.get(kind, "http"),
                                           approve=approve))
        else:
            raise McpConfigError(f"server {name!r}: needs a \"command\" (stdio) or an http(s) \"url\" that fits its \"type\"")
    return configs


def load_config(path: str) -> list[McpServerConfig]:
    try:
        return parse_config(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise McpConfigError(f"cannot read {path}: {error.strerror or error}") from None


def tool_name(server: str, tool: str) -> str:
    """A tool's name as the model sees it: `<server>__<tool>` (OpenAI allows [A-Za-z0-9_-], at most 64)."""
    return _NAME.sub("_", f"{server}__{tool}")[:64]
