"""A tiny MCP server for the tests (stdio), written with the official SDK: `python -m tests.mcp_server`."""
from mcp.server.mcpserver import MCPServer

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


if __name__ == "__main__":
    server.run()
