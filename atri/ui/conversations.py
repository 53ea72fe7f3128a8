"""The sidebar list of conversations: new, switch, search, rename, delete, export, import."""
from __future__ import annotations

import json

import streamlit as st

from atri.export import to_markdown
from atri.i18n import t
from atri.safe_markdown import plain_text
from atri.store import BadImport, Snapshot
from atri.ui.chat import open_conversation
from atri.ui.config import get_answerer, get_store, load_settings
from atri.ui.identity import current_owner
from atri.ui.session import IMPORT_FILE, session
from atri.ui.share_page import share_url

LIST_LIMIT = 50


def _import() -> None:
    upload = st.session_state.get(IMPORT_FILE)
    if upload is None:
        return
    try:
        cid = get_store().import_conversation(current_owner(), upload.getvalue())
    except BadImport as error:
        session.import_result = ("error", str(error))
        return
    session.import_result = ("ok", "")
    open_conversation(cid)


def _delete(cid: str) -> None:
    get_store().delete(current_owner(), cid)
    session.confirm_delete = None
    open_conversation(None)


def _confirm_delete(cid: str | None) -> None:
    session.confirm_delete = cid


def _rename(cid: str) -> None:
    get_store().rename(current_owner(), cid, st.session_state.get(f"rename_text::{cid}", ""))


def _share(cid: str) -> None:
    session.share_made = get_store().create_share(current_owner(), cid)


def _revoke(token: str) -> None:
    get_store().revoke_share(current_owner(), token)


def _file_name(title: str, suffix: str) -> str:
    """An export named after its chat: the title's letters, digits and CJK, the rest as dashes."""
    stem = "".join(char if char.isalnum() else "-" for char in title).strip("-")[:60]
    return f"{stem or 'atri-chat'}.{suffix}"


def _shares(lang: str, cid: str) -> None:
    """Share this chat (unless the host turned sharing off), and this chat's links that still work."""
    if load_settings().config.share_links == "off":
        return
    st.button(t(lang, "share_chat"), key="share", on_click=_share, args=(cid,), icon=":material/share:")
    shares = [share for share in get_store().shares(current_owner()) if share.conversation_id == cid]
    if not shares:
        return
    st.caption(t(lang, "share_link_made" if session.share_made == shares[0].token else "share_existing"))
    for share in shares:
        st.code(share_url(st.context.url or "", share.token), language=None)
        st.button(t(lang, "share_revoke"), key=f"revoke::{share.token}", on_click=_revoke, args=(share.token,),
                  icon=":material/link_off:", type="tertiary")


def _manage(lang: str, cid: str, title: str) -> None:
    store, owner = get_store(), current_owner()
    with st.expander(t(lang, "manage_chat")):
        st.text_input(t(lang, "title"), value=title, key=f"rename_text::{cid}")  # one field per chat: no stale title
        st.button(t(lang, "rename"), key="rename", on_click=_rename, args=(cid,), icon=":material/edit:")
        _shares(lang, cid)
        st.download_button(t(lang, "export_markdown"), key="export_md", file_name=_file_name(title, "md"),
                           mime="text/markdown",
                           data=lambda: to_markdown(title, store.messages(owner, cid)), icon=":material/description:")
        st.download_button(t(lang, "export_json"), key="export_json", file_name=_file_name(title, "json"),
                           mime="application/json", icon=":material/data_object:",
                           data=lambda: json.dumps(store.export(owner, cid), ensure_ascii=False, indent=2))
        if session.confirm_delete == cid:
            st.warning(t(lang, "delete_confirm", title=plain_text(title)))
            left, right = st.columns(2)
            left.button(t(lang, "delete_yes"), type="primary", key="delete_yes", on_click=_delete, args=(cid,))
            right.button(t(lang, "cancel"), key="delete_no", on_click=_confirm_delete, args=(None,))
        else:
            st.button(t(lang, "delete"), key="delete", icon=":material/delete:",
                      on_click=_confirm_delete, args=(cid,))


def conversation_sidebar(lang: str, view: Snapshot) -> None:
    store, owner = get_store(), current_owner()
    current = view.info
    with st.sidebar:
        st.button(t(lang, "new_chat"), on_click=open_conversation, args=(None,), icon=":material/add:",
                  width="stretch", key="new_chat")
        st.subheader(t(lang, "conversations"))
        query = st.text_input(t(lang, "search_conversations"), key="conversation_search", label_visibility="collapsed",
                              placeholder=t(lang, "search_conversations"))
        conversations = store.list_conversations(owner, query, limit=LIST_LIMIT)
        answering = get_answerer().answering(owner) | store.answering(owner)
        if query and not conversations:
            st.caption(t(lang, "no_matches"))
        for info in conversations:
            title = plain_text(info.title) or t(lang, "untitled")
            st.button(title, key=f"conversation::{info.id}", width="stretch",
                      icon=":material/progress_activity:" if info.id in answering else None,
                      help=t(lang, "still_answering") if info.id in answering else None,
                      type="primary" if current and info.id == current.id else "secondary",
                      on_click=open_conversation, args=(info.id,))
        if current:
            _manage(lang, current.id, current.title)
        with st.expander(t(lang, "import_json"), icon=":material/upload_file:"):
            st.file_uploader(t(lang, "import_json"), type=["json"], key=IMPORT_FILE, on_change=_import,
                             label_visibility="collapsed")
        status, reason = session.import_result or (None, "")
        session.import_result = None
        if status == "error":
            st.error(t(lang, "import_failed", reason=plain_text(reason)))
        elif status == "ok":
            st.success(t(lang, "imported"))
        st.divider()
