"""Read aloud (issue 33): a speaker button in an answer's toolbar, and the answer's speech under it once asked.

Spoken on this machine by espeak-ng (atri.speech), a process of its own with a time limit, for the visitor's
language; the WAV is kept for the few answers read last, so a page run draws it again without speaking again."""
from __future__ import annotations

import streamlit as st

from atri.i18n import t
from atri.messages import Message
from atri.speech import SpeechUnavailable, speak, speech_available, spoken_text
from atri.ui.session import session
from atri.ui.toolbar import icon_only

KEPT_READINGS = 8


def can_read_aloud(message: Message) -> bool:
    return message.role == "assistant" and bool(message.content.strip()) and speech_available()


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
    try:
        st.audio(_speech(message.content, lang, t(lang, "spoken_code_block")), format="audio/wav", autoplay=True)
    except SpeechUnavailable:
        st.caption(f":material/volume_off: {t(lang, 'read_aloud_unavailable')}")


@st.cache_data(max_entries=KEPT_READINGS, show_spinner=False)
def _speech(markdown: str, lang: str, code_block: str) -> bytes:
    return speak(spoken_text(markdown, code_block), lang)
