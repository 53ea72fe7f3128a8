"""An answer's tool steps (each a collapsed box: name, arguments, result, time), the call waiting for the
visitor's Approve or Deny, and the answer's web sources."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import streamlit as st

from atri.approval import PendingCall
from atri.i18n import t
from atri.images import BadImage, check_image_reference, decode_data_url
from atri.safe_markdown import defuse_images, plain_text
from atri.websearch import sources_markdown


def _arguments(text: str) -> str:
    """The arguments as indented JSON when they parse, as the model sent them otherwise."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (json.JSONDecodeError, RecursionError):
        return text


_DECLINED = {"denied": "tool_step_declined", "timed_out": "tool_step_timed_out"}


def step_label(lang: str, step: dict[str, Any]) -> str:
    key = _DECLINED.get(str(step.get("declined")), "tool_step_failed" if step.get("error") is not None else "tool_step")
    return t(lang, key, name=plain_text(str(step.get("name", ""))), seconds=float(step.get("seconds") or 0.0))


def _icon(step: dict[str, Any]) -> str:
    if step.get("declined"):
        return ":material/block:"
    return ":material/error:" if step.get("error") is not None else ":material/build:"


def show_tool_steps(lang: str, steps: Iterable[dict[str, Any]]) -> None:
    for step in steps:
        failed = step.get("error") is not None
        with st.expander(step_label(lang, step), icon=_icon(step)):
            st.caption(t(lang, "tool_arguments"))
            st.code(_arguments(str(step.get("arguments", ""))), language="json", wrap_lines=True)
            st.caption(t(lang, "tool_result"))
            st.code(str(step.get("error") if failed else step.get("result", "")), language="text", wrap_lines=True)
            _show_images(lang, step.get("images") or [])


def _thumbnail(image: Any) -> bytes | None:
    """A stored thumbnail's bytes; None when it is not one (st.image reads a plain string as a path)."""
    try:
        return decode_data_url(check_image_reference(str((image or {}).get("thumbnail", ""))))
    except (BadImage, AttributeError):
        return None


def _show_images(lang: str, images: list[Any]) -> None:
    """The images a call returned, as thumbnails; those the server meant for the visitor alone say so."""
    if not images:
        return
    pictures = [picture for picture in map(_thumbnail, images) if picture]
    if pictures:
        st.image(pictures, width=160)
    if len(pictures) < len(images):
        st.caption(f":material/broken_image: {t(lang, 'image_unshown')}")
    if any(isinstance(image, dict) and image.get("for_model") is False for image in images):
        st.caption(t(lang, "tool_images_shown_only"))


def show_pending_call(lang: str, pending: PendingCall, timeout_s: float, decide: Callable[[str, bool], None]) -> None:
    """The call waiting for the visitor: which tool, from which server, its arguments, and Approve / Deny, keyed
    by the call (a click decides this call, never a later one). `decide(call_id, approve)` is the callback."""
    with st.container(border=True):
        st.markdown(f":material/gpp_maybe: {t(lang, 'approval_asked', name=plain_text(pending.tool), server=plain_text(pending.server))}")
        st.code(pending.shown_arguments(), language="json", wrap_lines=True)
        with st.container(horizontal=True):
            st.button(t(lang, "approval_approve"), key=f"approve::{pending.id}", type="primary", icon=":material/check:",
                      on_click=decide, args=(pending.id, True))
            st.button(t(lang, "approval_deny"), key=f"deny::{pending.id}", icon=":material/close:",
                      on_click=decide, args=(pending.id, False))
        st.caption(t(lang, "approval_timeout", minutes=f"{timeout_s / 60:g}"))


def search_step_label(lang: str, searches: int | None, results: int, running: bool = False) -> str | None:
    """What the provider's web search did for an answer: searching, searched (n results), or skipped (the
    provider said it ran none); None when it says nothing (no search asked, or a search tool's steps say it)."""
    if searches == 0:
        return f":material/search_off: {t(lang, 'search_step_skipped')}"
    if searches or results:
        return f":material/travel_explore: {t(lang, 'search_step', count=results)}"
    return f":material/travel_explore: {t(lang, 'search_running')}" if running else None


def show_search_step(lang: str, searches: int | None, results: int, running: bool = False) -> None:
    label = search_step_label(lang, searches, results, running)
    if label:
        st.caption(label)


def show_sources(lang: str, sources: list[dict[str, Any]]) -> None:
    st.caption(f":material/travel_explore: {t(lang, 'sources_header')}")
    st.markdown(defuse_images(sources_markdown(sources)))  # links checked there; no image whatever else slips by
