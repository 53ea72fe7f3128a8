"""The sidebar's tools: built-in tools on or off, web search, and what each choice means for this model."""
from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from atri.i18n import t
from atri.messages import ChatOptions
from atri.providers import ModelInfo
from atri.settings import Settings
from atri.tools import BUILTINS, WEB_SEARCH, Toolbox, builtin_tools, web_search_tool

SEARXNG_ENV = "ATRI_SEARXNG_URL"
WEB_SEARCH_KEY = "tool::web_search"


def tool_key(name: str) -> str:
    return f"tool::{name}"


@dataclass
class ToolChoice:
    names: list[str] = field(default_factory=list)  # what the model is offered, stored with the answer
    web_search: bool = False
    toolbox: Toolbox | None = None


def visitor_zone() -> str:
    """The browser's IANA time zone, when Streamlit knows it (empty in tests and old browsers)."""
    try:
        return st.context.timezone or ""
    except Exception:  # noqa: BLE001 - no browser context (e.g. a script run without one)
        return ""


def searxng_url(settings: Settings) -> str:
    return (settings.values.get(SEARXNG_ENV) or "").strip()


def tools_controls(lang: str, settings: Settings, model: ModelInfo) -> ToolChoice:
    """The switches, drawn in an expander; returns the tools this answer may use."""
    with st.expander(t(lang, "tools_header"), icon=":material/build:"):
        names = [name for name in BUILTINS
                 if st.toggle(t(lang, f"tool_{name}"), key=tool_key(name), persist_state="session")]
        web_search = st.toggle(t(lang, "tool_web_search"), key=WEB_SEARCH_KEY, persist_state="session")
        searx = searxng_url(settings)
        if web_search:
            if model.web_search:
                st.caption(f":material/travel_explore: {t(lang, 'web_search_provider')}")
            elif searx and model.tools:
                st.caption(f":material/travel_explore: {t(lang, 'web_search_tool')}")
            else:
                st.caption(f":material/info: {t(lang, 'web_search_unconfigured')}")
        if (names or (web_search and not model.web_search)) and not model.tools:
            st.caption(f":material/block: {t(lang, 'tools_unsupported')}")
    tools = builtin_tools(names, visitor_zone())
    if web_search and not model.web_search and searx:
        tools.append(web_search_tool(searx))
        names.append(WEB_SEARCH)
    return ToolChoice(names, web_search, Toolbox(tools) if tools else None)


def restore_tools(options: ChatOptions) -> None:
    """Reopening a conversation brings back the tools of its last answer."""
    for name in BUILTINS:
        st.session_state[tool_key(name)] = name in options.tools
    st.session_state[WEB_SEARCH_KEY] = options.web_search
