"""Every place Atri leans on how Streamlit works inside rather than on its documented API, in one module.

Checked on the Streamlit named in CHECKED_ON (requirements.txt pins it). tests/test_streamlit_workarounds.py
goes red on an upgrade: re-check each workaround below against the new version (the browser tests show
whether the behaviour still holds), then move CHECKED_ON. An internal that has moved raises
StreamlitChanged rather than quietly doing nothing.

Not code, but the same kind of reliance: Streamlit names a fragment after its place among the page's
elements, so the chat's turn (atri/ui/chat_turn.py) must be drawn where every run has drawn the same
number of elements above it; docs/ARCHITECTURE.md describes the page's runs and fragments.
"""
from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import streamlit as st
from streamlit.delta_generator_singletons import context_dg_stack, get_default_dg_stack_value
from streamlit.runtime.app_session import AppSession
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequests, ScriptRequestType
from streamlit.runtime.scriptrunner_utils.script_run_context import ThreadState

CHECKED_ON = "1.67.0"
# Streamlit drops what it has not sent yet when the next run starts (AppSession._clear_queue on
# SCRIPT_STARTED): a moment before a rerun lets the server send what this run drew.
FINAL_DRAW_SEND_S = 0.03
# The header's running indicator (its `stStatusWidget` test id) has a Stop, shown with the ⋮ menu (toolbarMode
# "viewer"), that stops the page's script, not the answer: beside the answer's own Stop it would be a second one
# that does something else. Hidden by the style every page draws (atri/ui/localise.py); tests/test_browser.py's
# Stop test finds two Stops if the id moves.
HEADER_STOP_HIDDEN = '[data-testid="stStatusWidget"] button { display: none; }\n'



class StreamlitChanged(RuntimeError):
    """An internal a workaround relies on is not where CHECKED_ON had it."""


def click_waiting() -> bool:
    """A click inside a fragment does not cut the running script short (Streamlit lets the run finish first),
    so a loop that draws a live answer would hold it until the answer ends. The loop asks this and ends the
    run itself. ScriptRequests holds the pending request, ThreadState the fragment running now.

    Only a run of the whole page or of this fragment counts: another fragment's timer (the documents'
    indexing progress) waits for this run instead."""
    ctx = get_script_run_ctx()
    requests = ctx.script_requests if ctx is not None else None
    if requests is None:  # not a browser's run (AppTest)
        return False
    try:
        state, rerun = requests._state, requests._rerun_data
        fragments = rerun.fragment_id_queue if rerun is not None else []
        running = ThreadState.get().fragment_id
    except AttributeError as moved:
        raise StreamlitChanged(f"click_waiting: {moved}") from None
    return state == ScriptRequestType.RERUN and (not fragments or running in fragments)


@contextmanager
def at_page_top_level() -> Iterator[None]:
    """Draw as if from the page's top level while inside a fragment. Only a chat box drawn there keeps the
    page scrolled to the newest message (Streamlit's `is_auto_positioned_at_bottom`; `st.bottom.chat_input`
    is not), and a widget drawn by a fragment submits to that fragment."""
    outside_fragment = context_dg_stack.set(get_default_dg_stack_value())
    try:
        yield
    finally:
        context_dg_stack.reset(outside_fragment)


def rerun_page() -> None:
    """st.rerun of the whole page, after the pause that lets this run's last drawing reach the browser."""
    time.sleep(FINAL_DRAW_SEND_S)
    st.rerun(scope="app")


def key_class(key: str) -> str:
    """The CSS class Streamlit gives an element drawn with `key=` (not a documented contract)."""
    return f".st-key-{key}"


def hide_while(shown_in: str, hidden: list[str]) -> None:
    """Hide the keyed elements `hidden` for as long as the keyed block `shown_in` still shows a chat
    message, so that the browser never draws both (it draws what has come every 10 ms). Drawn on every run,
    even with nothing to hide: the browser loads what draws it on first use, a frame too late otherwise."""
    taken_over = ", ".join(key_class(key) for key in hidden) or key_class("none")
    st.html(f'<style>body:has({key_class(shown_in)} [data-testid="stChatMessage"]) :is({taken_over}) '
            '{display: none;}</style>')


@lru_cache(maxsize=1)
def settle_heap() -> None:
    """Called when a page run has ended: from then on Python's full garbage collections leave out what the
    process had loaded by then (its modules, the database engine, the embedded model's vocabulary). Each of
    them walked that whole heap, 0.2-0.3 s with every thread stopped, at random moments: before an answer's
    first token or in the middle of its stream (Streamlit's runs allocate enough to trigger them often)."""
    gc.collect()
    gc.freeze()


def missing_internals() -> list[str]:
    """The internals above that cannot be found in the installed Streamlit (empty when all are there)."""
    missing = []
    requests = ScriptRequests()
    for name in ("_state", "_rerun_data"):
        if not hasattr(requests, name):
            missing.append(f"ScriptRequests.{name}")
    if not hasattr(requests._rerun_data, "fragment_id_queue"):
        missing.append("RerunData.fragment_id_queue")
    if not hasattr(ThreadState, "get"):
        missing.append("ThreadState.get")
    if not hasattr(AppSession, "_clear_queue"):
        missing.append("AppSession._clear_queue")
    return missing
