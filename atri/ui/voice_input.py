"""The chat box's microphone (issue 33): a recording is transcribed by the provider (atri.voice) and its words put
in the box, after what was typed, for the visitor to check and send."""
from __future__ import annotations

import streamlit as st

from atri.answers import TurnSetup
from atri.errors import ChatError
from atri.ui.error_text import error_text
from atri.ui.session import CHAT_INPUT, SEND_AT_ONCE, session
from atri.voice import VoiceProblem, transcribe


def can_record(setup: TurnSetup | None) -> bool:
    """The provider the chat uses has a transcription model and a connection (a key) to reach it."""
    return bool(setup and setup.connection and setup.connection.provider.transcription_model)


def send_voice_at_once() -> bool:
    return bool(st.session_state.get(SEND_AT_ONCE, False))


def transcribe_into_box(lang: str, typed: str, recording: bytes) -> str:
    """Called from the chat box's callback: the words heard join what was typed, in the box; returned too, for
    the callback to send at once when the visitor chose so ("" when nothing was heard)."""
    setup = session.answer_setup
    heard = ""
    try:
        if setup is None or setup.connection is None:
            raise VoiceProblem("recording_no_model")
        heard = transcribe(setup.connection, recording)
        if not heard:
            session.attachment_problems = [("recording_silent", {})]
    except VoiceProblem as problem:
        session.attachment_problems = [(problem.key, problem.values)]
    except ChatError as error:
        session.attachment_problems = [("recording_failed", {"reason": error_text(lang, error.kind, error.detail)})]
    question = " ".join(part for part in (typed.strip(), heard) if part)
    st.session_state[CHAT_INPUT] = question
    return question if heard else ""
