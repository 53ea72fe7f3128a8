"""A shared chat, read-only, for whoever holds its link: the messages as they were shared (images as
links, sources, math, code), nothing of the sidebar, no key used; "continue in my own chat" copies it."""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import streamlit as st

from atri.i18n import t
from atri.store import SharedChat
from atri.ui.config import get_store
from atri.ui.identity import current_owner
from atri.ui.render import show_answer_body, show_images, show_verbatim

SHARE_PATH, SHARE_PARAM = "shared", "s"


def share_url(page_url: str, token: str) -> str:
    """The share's address beside the page the owner is on (the host and any base path they reached it by)."""
    page = urlsplit(page_url)
    folder = page.path.rsplit("/", 1)[0]
    return urlunsplit((page.scheme, page.netloc, f"{folder}/{SHARE_PATH}", f"{SHARE_PARAM}={token}", ""))


def _messages(lang: str, chat: SharedChat) -> None:
    for index, message in enumerate(chat.messages):
        with st.chat_message(message.role):
            show_images(lang, message)
            if message.role == "user":
                show_verbatim(lang, message.content, f"shared::{index}")
            else:
                show_answer_body(lang, message)


def share_page(lang: str, can_continue: bool, sharing_on: bool = True) -> None:
    """`can_continue`: the visitor may have chats here (past the access gate, if any); `sharing_on`: the
    host has not turned share links off (ATRI_SHARE_LINKS=off)."""
    token = st.query_params.get(SHARE_PARAM, "")
    chat = get_store().shared(token) if token and sharing_on else None
    if chat is None:
        st.info(t(lang, "share_gone"), icon=":material/link_off:")
        return
    st.title(chat.title or t(lang, "untitled"))
    st.caption(t(lang, "share_read_only", date=chat.created_at.strftime("%Y-%m-%d")))
    _messages(lang, chat)
    if can_continue and st.button(t(lang, "share_continue"), icon=":material/forum:", type="primary"):
        cid = get_store().continue_shared(token, current_owner())
        if cid is not None:
            st.switch_page("app_pages/0_Chat.py", query_params={"c": cid})
