"""The conversation in session state, and driving one turn from submission to saved answer."""
from __future__ import annotations

import streamlit as st

from atri.errors import ChatError
from atri.i18n import t
from atri.images import ImageBatch, file_to_data_url, parse_image_urls
from atri.messages import AnswerFacts, Message
from atri.request import build_request
from atri.turn import Turn, run_turn
from atri.ui.render import LiveAnswer, show_message
from atri.ui.sidebar import ChatSetup

CHAT_INPUT_KEY = "chat_input"
IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "gif", "bmp"]


def messages() -> list[Message]:
    return st.session_state.setdefault("messages", [])


def new_chat() -> None:
    st.session_state.messages = []
    st.session_state.pending = False


def _on_submit() -> None:
    value = st.session_state.get(CHAT_INPUT_KEY)
    if value is None:
        return
    text = value if isinstance(value, str) else (value.text or "")
    files = [] if isinstance(value, str) else list(value.files or [])
    batch: ImageBatch = parse_image_urls(st.session_state.get("image_urls", ""))
    for upload in files:
        file_to_data_url(upload.name, upload.getvalue(), batch)
    st.session_state.image_problems = batch.problems
    if not text.strip() and not batch.urls:
        return
    messages().append(Message("user", text, images=batch.urls))
    st.session_state.image_urls = ""
    st.session_state.pending = True


def _retry() -> None:
    history = messages()
    if history and history[-1].role == "assistant":
        history.pop()
    st.session_state.pending = True


def show_history(lang: str) -> None:
    history = messages()
    for message in history:
        show_message(lang, message)
    for key, values in st.session_state.get("image_problems", []):
        st.warning(t(lang, key, **values))
    last = history[-1] if history else None
    if last and last.role == "assistant" and last.facts and last.facts.error_kind and not st.session_state.get("pending"):
        st.button(t(lang, "retry"), on_click=_retry, icon=":material/refresh:", key="retry")


def chat_input(lang: str) -> None:
    st.chat_input(t(lang, "chat_placeholder"), key=CHAT_INPUT_KEY, on_submit=_on_submit,
                  accept_file="multiple", file_type=IMAGE_TYPES, submit_mode="stop")


def _failed_message(setup: ChatSetup, error: ChatError) -> Message:
    facts = AnswerFacts(model=setup.options.model, error_kind=error.kind, error_detail=error.detail)
    return Message("assistant", "", facts=facts, options=setup.options)


def answer_pending(setup: ChatSetup, lang: str) -> None:
    """Stream the answer to the last user message, then keep it (whole, partial or failed)."""
    if not st.session_state.get("pending"):
        return
    st.session_state.pending = False
    history = messages()
    if setup.connection is None:
        history.append(_failed_message(setup, ChatError("no_connection")))
        st.rerun()
    plan = build_request(history, setup.options, setup.model, setup.connection.provider)
    turn: Turn | None = None
    with st.chat_message("assistant"):
        live = LiveAnswer(lang)
        try:
            for turn in run_turn(setup.connection, plan, setup.model, count=setup.count):
                live.draw(turn)
        except BaseException:
            # The stop button (or a new rerun) interrupts the script here: keep what arrived.
            if turn is not None:
                turn.error = turn.error or ChatError("stopped")
                history.append(turn.to_message(setup.options))
            raise
    history.append(turn.to_message(setup.options))
    st.rerun()
