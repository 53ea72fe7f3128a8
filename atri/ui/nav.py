"""Links between the pages, with names in the visitor's language (Streamlit's own list shows file names)."""
from __future__ import annotations

import streamlit as st

from atri.i18n import t


def navigation(lang: str) -> None:
    with st.sidebar:
        st.page_link("app.py", label=t(lang, "page_chat"), icon=":material/chat:")
        st.page_link("pages/1_Compare.py", label=t(lang, "page_compare"), icon=":material/compare_arrows:")
