"""A tiny MCP server for the tests, written with the official SDK: stdio with `python -m tests.mcp_server`, or
streamable HTTP behind a bearer token with `http_app(token)`. `crash` makes it exit the way a server with a fatal
error does (a reason on stderr); it and `pid` are there with `--crashable`. With `--files DIR` it also writes and
reads files in DIR, as the filesystem reference server does: `write_file` says it is destructive, `read_file` that
it only reads."""
import os
import sys
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from starlette.responses import JSONResponse

server = MCPServer("atri-test")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


@server.tool()
def shout(text: str) -> str:
    """The text in capitals."""
    return text.upper() + "!"


@server.tool()
def explode(reason: str) -> str:
    """Always fails."""
    raise ValueError(reason)


def crash(reason: str) -> str:
    """Prints the reason on stderr and exits at once, as a server that hits a fatal error does."""
    print(f"fatal: {reason}", file=sys.stderr, flush=True)
    os._exit(3)


def pid() -> int:
    """This server's process id."""
    return os.getpid()


def file_tools(folder: Path) -> None:
    """`write_file` and `read_file` inside `folder`, annotated as the filesystem reference server annotates them."""
    def inside(path: str) -> Path:
        target = (folder / path).resolve()
        if folder.resolve() not in target.parents:
            raise ValueError(f"{path} is outside the allowed folder")
        return target

    @server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True))
    def write_file(path: str, content: str) -> str:
        """Create or overwrite a file."""
        inside(path).write_text(content, encoding="utf-8")
        return f"Successfully wrote to {path}"

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def read_file(path: str) -> str:
        """A file's text."""
        return inside(path).read_text(encoding="utf-8")


def http_app(token: str) -> Any:
    """This server over streamable HTTP, refusing every request without `Authorization: Bearer <token>` as an
    OAuth-protected server does (401, `WWW-Authenticate`)."""
    app = server.streamable_http_app()

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != f"Bearer {token}".encode():
            refusal = JSONResponse({"error": "invalid_token", "error_description": "a valid bearer token is needed"},
                                   status_code=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
            await refusal(scope, receive, send)
            return
        await app(scope, receive, send)

    return guarded


if __name__ == "__main__":
    if "--crashable" in sys.argv:
        server.tool()(crash)
        server.tool()(pid)
    if "--files" in sys.argv:
        file_tools(Path(sys.argv[sys.argv.index("--files") + 1]))
    server.run()
