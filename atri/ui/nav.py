"""The pages, listed once, with names in the visitor's language; and the settings every page shares."""
from __future__ import annotations

import streamlit as st

from atri.i18n import LANGUAGES, t
from atri.ui.session import LANG
from atri.ui.share_page import SHARE_PATH as SHARED_PATH


def pages(lang: str) -> list[st.Page]:
    return [
        st.Page("app_pages/0_Chat.py", title=t(lang, "page_chat"), icon=":material/chat:", default=True),
        st.Page("app_pages/1_Compare.py", title=t(lang, "page_compare"), icon=":material/compare_arrows:",
                url_path="compare"),
        st.Page("app_pages/2_Batch.py", title=t(lang, "page_batch"), icon=":material/playlist_play:", url_path="batch"),
        st.Page("app_pages/3_Extract.py", title=t(lang, "page_extract"), icon=":material/data_object:",
                url_path="extract"),
        st.Page("app_pages/4_Usage.py", title=t(lang, "page_usage"), icon=":material/monitoring:", url_path="usage"),
        st.Page("app_pages/5_Shared.py", title=t(lang, "page_shared"), icon=":material/share:", url_path=SHARED_PATH,
                visibility="hidden"),  # reached only by a share link
    ]


def public_share(page: st.Page, share_links: str) -> bool:
    """The page is a share link's and the host lets anyone open those (ATRI_SHARE_LINKS=public)."""
    return share_links == "public" and page.url_path == SHARED_PATH


def language_picker(lang: str) -> None:
    with st.sidebar:
        st.selectbox(t(lang, "language"), list(LANGUAGES), format_func=LANGUAGES.get, key=LANG, persist_state="session")
