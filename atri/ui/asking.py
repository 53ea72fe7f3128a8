"""Asking for an answer: the open conversation's id, a question saved before anything goes out, and the
answer started at once from the callback that asked (or handed to the next page run)."""
from __future__ import annotations

from dataclasses import replace

import streamlit as st

from atri.answers import TooManyAnswers, TurnSetup
from atri.conversation import busy, save_question
from atri.documents import Upload
from atri.messages import Message
from atri.ui.config import get_answerer, get_store
from atri.ui.context_panel import current_settings
from atri.ui.identity import current_owner
from atri.ui.session import PendingAnswer, custom_model_key, model_key, session

# The question's callback lets the answer's request go out before its run draws the page: drawing and the
# answer's worker take turns at this process's GIL, and the request went out ~15 ms later while they did.
REQUEST_HEADSTART_S = 0.1


def conversation_id() -> str | None:
    return st.query_params.get("c")


def open_conversation(cid: str | None) -> None:
    if cid:
        st.query_params["c"] = cid
    else:
        st.query_params.pop("c", None)
    session.pending = None
    session.editing = None
    session.history_start = {key: start for key, start in session.history_start.items() if key != cid}


def send_question(message: Message, position: int | None = None, documents: tuple[Upload, ...] = ()) -> None:
    """Save the question before anything goes out, then ask for the answer (which reads the documents first)."""
    cid, made = save_question(get_store(), current_owner(), conversation_id(), message, position=position,
                              documents=documents, settings={"context": current_settings().to_dict()})
    if made:
        session.context_loaded_for = session.options_loaded_for = cid  # the widgets hold the new chat's choices
        st.query_params["c"] = cid
        session.needs_title = cid
    ask_for_answer(PendingAnswer(cid, documents=documents))  # answered after the question, wherever it stands
    session.editing = None


def ask_for_answer(pending: PendingAnswer) -> None:
    """Called from the chat box's and buttons' callbacks: the answer starts at once, with the choices the
    last run's sidebar made (nothing in the sidebar can change without a run), while this run draws the
    page. Before any run has made them, the run hands it over instead."""
    if session.answer_setup is None:
        session.pending = pending
    else:
        start_answer(pending, session.answer_setup)


def start_answer(pending: PendingAnswer, setup: TurnSetup) -> None:
    wants_title = session.needs_title == pending.conversation
    if wants_title:
        session.needs_title = None
    try:
        live = get_answerer().start(current_owner(), pending.conversation, replace(setup, documents=pending.documents),
                                    pending.position, wants_title)
        live.wait_until_asked(REQUEST_HEADSTART_S)
    except TooManyAnswers as limit:
        session.answers_refused = limit.args[0]
        if pending.documents:  # kept for when the question is asked again
            get_answerer().keep_documents(current_owner(), pending.conversation, pending.documents, setup.count)


def answer_being_written(cid: str | None) -> bool:
    live = get_answerer().live(current_owner(), cid) if cid else None
    return bool(cid) and ((live is not None and live.active) or busy(get_store().snapshot(current_owner(), cid)))


def switch_model(provider_id: str, model_id: str) -> None:
    """The chat's model picker set to `model_id`; what is asked next waits for the page run that makes the new
    model's choices."""
    st.session_state[model_key(provider_id)] = model_id
    st.session_state[custom_model_key(provider_id)] = ""
    session.answer_setup = None
