"""An answer's tool steps (each a collapsed box: name, arguments, result, time) and its web sources."""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import streamlit as st

from atri.i18n import t
from atri.safe_markdown import defuse_images, plain_text
from atri.websearch import sources_markdown


def _arguments(text: str) -> str:
    """The arguments as indented JSON when they parse, as the model sent them otherwise."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (json.JSONDecodeError, RecursionError):
        return text


def step_label(lang: str, step: dict[str, Any]) -> str:
    key = "tool_step_failed" if step.get("error") is not None else "tool_step"
    return t(lang, key, name=plain_text(str(step.get("name", ""))), seconds=float(step.get("seconds") or 0.0))


def show_tool_steps(lang: str, steps: Iterable[dict[str, Any]]) -> None:
    for step in steps:
        failed = step.get("error") is not None
        with st.expander(step_label(lang, step), icon=":material/error:" if failed else ":material/build:"):
            st.caption(t(lang, "tool_arguments"))
            st.code(_arguments(str(step.get("arguments", ""))), language="json", wrap_lines=True)
            st.caption(t(lang, "tool_result"))
            st.code(str(step.get("error") if failed else step.get("result", "")), language="text", wrap_lines=True)


def show_sources(lang: str, sources: list[dict[str, Any]]) -> None:
    st.caption(f":material/travel_explore: {t(lang, 'sources_header')}")
    st.markdown(defuse_images(sources_markdown(sources)))  # links checked there; no image whatever else slips by
