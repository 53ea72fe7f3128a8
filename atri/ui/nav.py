"""The pages, listed once, with names in the visitor's language; and the settings every page shares."""
from __future__ import annotations

import streamlit as st

from atri.i18n import LANGUAGES, t
from atri.ui.session import LANG


def pages(lang: str) -> list[st.Page]:
    return [
        st.Page("pages/0_Chat.py", title=t(lang, "page_chat"), icon=":material/chat:", default=True),
        st.Page("pages/1_Compare.py", title=t(lang, "page_compare"), icon=":material/compare_arrows:",
                url_path="compare"),
        st.Page("pages/2_Batch.py", title=t(lang, "page_batch"), icon=":material/playlist_play:", url_path="batch"),
        st.Page("pages/3_Extract.py", title=t(lang, "page_extract"), icon=":material/data_object:",
                url_path="extract"),
        st.Page("pages/4_Usage.py", title=t(lang, "page_usage"), icon=":material/monitoring:", url_path="usage"),
    ]


def language_picker(lang: str) -> None:
    with st.sidebar:
        st.selectbox(t(lang, "language"), list(LANGUAGES), format_func=LANGUAGES.get, key=LANG, persist_state="session")
