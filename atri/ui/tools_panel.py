"""The sidebar's tools: built-in tools on or off, web search, the host's MCP servers, and what each choice
means for this model."""
from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from atri.i18n import t
from atri.mcp_tools import McpConfigError, McpHub
from atri.messages import ChatOptions
from atri.providers import ModelInfo
from atri.safe_markdown import plain_text
from atri.settings import Settings
from atri.tools import BUILTINS, WEB_SEARCH, Toolbox, builtin_tools, web_search_tool
from atri.ui.config import services
from atri.ui.session import READ_PAGES_KEY, WEB_SEARCH_KEY, mcp_key, tool_key

MCP_ENV = "ATRI_MCP_CONFIG"  # named in the message when the file cannot be read


def mcp_hub(settings: Settings) -> McpHub | McpConfigError | None:
    return services().mcp_hub(settings.config.mcp_config, settings.values)


def _mcp_controls(lang: str, hub: McpHub | McpConfigError | None, model: ModelInfo) -> set[str]:
    """A switch per configured server, its tools listed; a server that failed says why. Returns those on."""
    if hub is None:
        return set()
    st.caption(f":material/hub: {t(lang, 'mcp_header')}")
    if isinstance(hub, McpConfigError):
        st.caption(f":material/error: {t(lang, 'mcp_failed', server=MCP_ENV, reason=plain_text(str(hub)))}")
        return set()
    chosen = set()
    for name, state in hub.servers.items():
        if state.client is None:
            reason = state.error or t(lang, "mcp_connecting")
            st.caption(f":material/error: {t(lang, 'mcp_failed', server=plain_text(name), reason=plain_text(reason))}")
            continue
        label = t(lang, "mcp_tools", server=name, count=len(state.tools))
        if st.toggle(label, key=mcp_key(name), persist_state="session", disabled=not model.tools):
            chosen.add(name)
        st.caption(", ".join(plain_text(tool.name) for tool in state.tools))
    return chosen


@dataclass
class ToolChoice:
    names: list[str] = field(default_factory=list)  # what the model is offered, stored with the answer
    web_search: bool = False
    toolbox: Toolbox | None = None
    read_pages: bool = False  # the provider's search reads the pages it finds


def visitor_zone() -> str:
    """The browser's IANA time zone, when Streamlit knows it (empty in tests and old browsers)."""
    try:
        return st.context.timezone or ""
    except Exception:  # noqa: BLE001 - no browser context (e.g. a script run without one)
        return ""


def tools_controls(lang: str, settings: Settings, model: ModelInfo) -> ToolChoice:
    """The switches, drawn in an expander; returns the tools this answer may use."""
    with st.expander(t(lang, "tools_header"), icon=":material/build:"):
        if not model.tools:  # said first, and the switches greyed: nothing below is offered to this model
            st.caption(f":material/block: {t(lang, model.tools_note or 'tools_unsupported')}")
        names = [name for name in BUILTINS
                 if st.toggle(t(lang, f"tool_{name}"), key=tool_key(name), persist_state="session",
                              disabled=not model.tools)]
        web_search = bool(st.session_state.get(WEB_SEARCH_KEY, False))  # its switch sits by the chat box
        searx = settings.config.searxng_url
        read_pages = False
        if web_search:
            if model.web_search:
                st.caption(f":material/travel_explore: {t(lang, 'web_search_provider')}")
                if model.reads_pages:
                    read_pages = st.toggle(t(lang, "tool_read_pages"), key=READ_PAGES_KEY, persist_state="session",
                                           help=t(lang, "tool_read_pages_help"))
            elif searx and model.tools:
                st.caption(f":material/travel_explore: {t(lang, 'web_search_tool')}")
            else:
                st.caption(f":material/info: {t(lang, 'web_search_unconfigured')}")
        hub = mcp_hub(settings)
        servers = _mcp_controls(lang, hub, model)
    tools = builtin_tools(names, visitor_zone())
    if servers and isinstance(hub, McpHub):
        served = hub.tools(servers)
        tools += served
        names += [tool.name for tool in served]
    if web_search and not model.web_search and searx:
        tools.append(web_search_tool(searx))
        names.append(WEB_SEARCH)
    return ToolChoice(names, web_search, Toolbox(tools) if tools else None, read_pages)


def restore_tools(options: ChatOptions) -> None:
    """Reopening a conversation brings back the tools of its last answer."""
    for name in BUILTINS:
        st.session_state[tool_key(name)] = name in options.tools
    st.session_state[WEB_SEARCH_KEY] = options.web_search
    st.session_state[READ_PAGES_KEY] = options.read_pages
    for server in {name.split("__", 1)[0] for name in options.tools if "__" in name}:
        st.session_state[mcp_key(server)] = True
