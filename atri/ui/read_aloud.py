"""Read aloud (issue 33): a speaker button in an answer's toolbar, and the answer's speech under it once asked.

Spoken by the chat's provider when it has a speech model and a key to reach it (DashScope: qwen3-tts-flash,
atri.voice), else on this machine by espeak-ng (atri.speech), a process of its own with a time limit, for the
visitor's language. The WAV is kept in the session for the few answers read last, so a page run draws it again
without speaking again (nor paying again)."""
from __future__ import annotations

import streamlit as st

from atri.errors import ChatError
from atri.i18n import t
from atri.messages import Message
from atri.settings import Connection
from atri.speech import SpeechUnavailable, speak, speech_available, spoken_text
from atri.ui.error_text import error_text
from atri.ui.session import session
from atri.ui.toolbar import icon_only
from atri.voice import can_speak, speak_with_provider

KEPT_READINGS = 3  # a quarter of an hour of Chinese read by the provider is ~40 MB of WAV


def can_read_aloud(message: Message) -> bool:
    return message.role == "assistant" and bool(message.content.strip()) and (speech_available() or _cloud() is not None)


def _cloud() -> Connection | None:
    """The chat's connection, when its provider has a speech model."""
    setup = session.answer_setup
    connection = setup.connection if setup else None
    return connection if connection is not None and can_speak(connection) else None


def read_aloud_button(lang: str, message: Message) -> None:
    key = f"read_aloud::{message.id}"
    with icon_only(key):
        st.button(t(lang, "read_aloud"), icon=":material/volume_up:", key=key, type="tertiary",
                  help=t(lang, "read_aloud"), on_click=_ask_to_read, args=(message.id,))


def _ask_to_read(message_id: int | None) -> None:
    session.reading_aloud = message_id


def read_aloud_player(lang: str, message: Message) -> None:
    """The answer's speech, playing at once, when this is the answer the visitor asked to hear."""
    if message.id is None or session.reading_aloud != message.id:
        return
    wav = session.readings.get(message.id)
    if wav is None:
        wav = _speech(lang, spoken_text(message.content, t(lang, "spoken_code_block")))
        if wav is None:
            return
        session.readings = {**dict(list(session.readings.items())[-(KEPT_READINGS - 1):]), message.id: wav}
    st.audio(wav, format="audio/wav", autoplay=True)


def _speech(lang: str, text: str) -> bytes | None:
    """The provider's voice, or this machine's when the provider has none or fails (said under the player)."""
    connection = _cloud()
    if connection is not None:
        try:
            with st.spinner(t(lang, "read_aloud_preparing")):
                return speak_with_provider(connection, text, lang)
        except ChatError as error:
            st.caption(f":material/cloud_off: {t(lang, 'read_aloud_cloud_failed', reason=error_text(lang, error.kind, error.detail))}")
    try:
        return speak(text, lang)
    except SpeechUnavailable:
        st.caption(f":material/volume_off: {t(lang, 'read_aloud_unavailable')}")
        return None
