"""The sidebar's conversations: new, search, the list grouped by day with pinned ones on top and more as one
scrolls; each chat's ⋯ menu renames, pins, shares, exports or deletes it; import."""
from __future__ import annotations

import json
from datetime import datetime

import streamlit as st

from atri.conversation_list import group_by_date, visitor_zone
from atri.export import to_markdown
from atri.i18n import t
from atri.safe_markdown import plain_text
from atri.store import BadImport, ConversationInfo, Snapshot
from atri.ui.asking import conversation_id, open_conversation
from atri.ui.browser_script import MORE_KEY, NEW_CHAT_KEY, SEARCH_KEY
from atri.ui.config import get_answerer, get_store, load_settings
from atri.ui.identity import current_owner
from atri.ui.session import IMPORT_FILE, session
from atri.ui.share_page import share_url

PAGE = 50  # chats listed at first, and added by each "Show more"
# A chat's row: its title, left-aligned, cut with an ellipsis, and its ⋯ (an icon; the label is for screen
# readers and tests). With a mouse the ⋯ shows on the row under it, the open chat's and an open menu's.
# A menu's items are drawn by the run its opening starts: the menu opens empty, and Streamlit's popover
# places itself by that size (a chat low in the list got a menu 100 px tall). Its room is kept from the start.
# The list scrolls in its own box, which ends about where the screen does below the sidebar's top part (31rem):
# what follows it (the key field) stays within reach however many chats load as it scrolls.
STYLE = """<style>
.st-key-chat_list {{ position: relative; max-height: max(16rem, calc(100dvh - 31rem)); overflow-y: auto; overscroll-behavior: contain;
    scrollbar-width: thin; flex-wrap: nowrap; }}
.st-key-chat_list [data-testid=stCaptionContainer] {{ margin: 0.75rem 0 0 0.5rem; }}
[class*=st-key-chat_row] > .stElementContainer {{ flex: 1 1 0; min-width: 0; }}
[class*=st-key-chat_row] .stButton button {{ width: 100%; justify-content: flex-start; min-height: 2.25rem;
    padding: 0.25rem 0.5rem; }}
[class*=st-key-chat_row] .stButton button > div {{ min-width: 0; justify-content: flex-start; }}
[class*=st-key-chat_row] .stButton button p {{ text-align: left; }}
[class*=st-key-chat_menu] button {{ min-height: 2.25rem; justify-content: flex-start; }}
[class*=st-key-menu] [data-testid=stPopoverButton] {{ position: relative; min-height: 2.25rem; padding: 0 0.45rem; }}
[class*=st-key-menu] [data-testid=stPopoverButton] [data-testid=stMarkdownContainer] {{ position: absolute;
    width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }}
[class*=st-key-menu] [data-testid=stPopoverButton] div[aria-hidden=true] {{ display: none; }}
@media (hover: hover) and (pointer: fine) {{
    [class*=st-key-chat_row]:not(:hover):not(:focus-within):not(:has(.stButton button[kind=secondary]))
        [data-testid=stPopoverButton][aria-expanded=false] {{ opacity: 0; }}
}}
[data-testid=stPopoverBody][aria-label="{menu}"] {{ min-height: min(21rem, 70vh); }}
</style>"""


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


def _menu_key(cid: str) -> str:
    return f"menu::{cid}"


def _close_menu(cid: str) -> None:
    st.session_state[_menu_key(cid)] = False


def _delete(cid: str) -> None:
    get_store().delete(current_owner(), cid)
    session.confirm_delete = None
    if conversation_id() == cid:  # another chat's menu leaves the open one open
        open_conversation(None)


def _confirm_delete(cid: str | None) -> None:
    session.confirm_delete = cid


def _rename_and_close(cid: str) -> None:
    _rename(cid)
    _close_menu(cid)


def _pin(cid: str, pinned: bool) -> None:
    get_store().pin(current_owner(), cid, pinned)
    _close_menu(cid)


def _show_more() -> None:
    session.list_pages += 1


def _search_changed() -> None:
    session.list_pages = 1


def _rename(cid: str) -> None:
    get_store().rename(current_owner(), cid, st.session_state.get(f"rename_text::{cid}", ""))


def _share(cid: str) -> None:
    session.share_made = get_store().create_share(current_owner(), cid)


def _revoke(token: str) -> None:
    get_store().revoke_share(current_owner(), token)
    if session.answer_shared and session.answer_shared[1] == token:
        session.answer_shared = None


def _file_name(title: str, suffix: str) -> str:
    """An export named after its chat: the title's letters, digits and CJK, the rest as dashes."""
    stem = "".join(char if char.isalnum() else "-" for char in title).strip("-")[:60]
    return f"{stem or 'atri-chat'}.{suffix}"


def _shares(lang: str, cid: str) -> None:
    """Share this chat (unless the host turned sharing off), and this chat's links that still work."""
    if load_settings().config.share_links == "off":
        return
    st.button(t(lang, "share_chat"), key=f"share::{cid}", on_click=_share, args=(cid,), icon=":material/share:",
              type="tertiary")
    shares = [share for share in get_store().shares(current_owner()) if share.conversation_id == cid]
    if not shares:
        return
    st.caption(t(lang, "share_link_made" if session.share_made == shares[0].token else "share_existing"))
    for share in shares:
        st.code(share_url(st.context.url or "", share.token), language=None, wrap_lines=True)
        st.button(t(lang, "share_revoke"), key=f"revoke::{share.token}", on_click=_revoke, args=(share.token,),
                  icon=":material/link_off:", type="tertiary")


def _menu(lang: str, info: ConversationInfo) -> None:
    """One chat's ⋯ menu: drawn only while it is open (120 chats would otherwise draw a thousand widgets)."""
    store, owner, cid, title = get_store(), current_owner(), info.id, info.title
    st.text_input(t(lang, "title"), value=title, key=f"rename_text::{cid}", on_change=_rename, args=(cid,))
    st.button(t(lang, "rename"), key=f"rename::{cid}", on_click=_rename_and_close, args=(cid,),
              icon=":material/edit:", type="tertiary")
    st.button(t(lang, "unpin" if info.pinned else "pin"), key=f"pin::{cid}", on_click=_pin, args=(cid, not info.pinned),
              icon=":material/keep_off:" if info.pinned else ":material/keep:", type="tertiary")
    _shares(lang, cid)
    st.download_button(t(lang, "export_markdown"), key=f"export_md::{cid}", file_name=_file_name(title, "md"),
                       mime="text/markdown", type="tertiary", on_click="ignore",
                       data=lambda: to_markdown(title, store.messages(owner, cid)), icon=":material/description:")
    st.download_button(t(lang, "export_json"), key=f"export_json::{cid}", file_name=_file_name(title, "json"),
                       mime="application/json", icon=":material/data_object:", type="tertiary", on_click="ignore",
                       data=lambda: json.dumps(store.export(owner, cid), ensure_ascii=False, indent=2))
    if session.confirm_delete == cid:
        st.warning(t(lang, "delete_confirm", title=plain_text(title)))
        left, right = st.columns(2)
        left.button(t(lang, "delete_yes"), type="primary", key=f"delete_yes::{cid}", on_click=_delete, args=(cid,))
        right.button(t(lang, "cancel"), key=f"delete_no::{cid}", on_click=_confirm_delete, args=(None,))
    else:
        st.button(t(lang, "delete"), key=f"delete::{cid}", icon=":material/delete:", type="tertiary",
                  on_click=_confirm_delete, args=(cid,))


def _item(lang: str, info: ConversationInfo, open_cid: str | None, answering: set[str]) -> None:
    """A chat's button, and beside it its ⋯ menu."""
    title = plain_text(info.title) or t(lang, "untitled")
    row = st.container(horizontal=True, wrap=False, gap=None, vertical_alignment="center", key=f"chat_row::{info.id}")
    row.button(title, key=f"conversation::{info.id}", width="stretch",
               icon=":material/progress_activity:" if info.id in answering else None,
               help=t(lang, "still_answering") if info.id in answering else None,
               type="secondary" if info.id == open_cid else "tertiary",
               on_click=open_conversation, args=(info.id,))
    menu = row.popover(t(lang, "chat_menu"), icon=":material/more_horiz:", type="tertiary", key=_menu_key(info.id),
                       on_change=_confirm_delete, args=(None,))  # a menu opens without a delete half-asked
    if menu.open:
        with menu, st.container(key=f"chat_menu::{info.id}", gap=None):
            _menu(lang, info)


def _listed(lang: str, query: str, open_cid: str | None) -> None:
    """The owner's chats in their groups, a page at a time: "Show more" (pressed by the page's script when
    it scrolls into view) lists the next page."""
    store, owner = get_store(), current_owner()
    shown = PAGE * session.list_pages
    conversations = store.list_conversations(owner, query, limit=shown + 1)
    answering = get_answerer().answering(owner) | store.answering(owner)
    if query and not conversations:
        st.caption(t(lang, "no_matches"))
    now = datetime.now(visitor_zone(st.context.timezone))
    with st.container(key="chat_list", gap=None):
        for group in group_by_date(conversations[:shown], now):
            st.caption(t(lang, f"list_group_{group.key}"))
            for info in group.items:
                _item(lang, info, open_cid, answering)
        if len(conversations) > shown:
            st.button(t(lang, "show_more"), key=MORE_KEY, on_click=_show_more, icon=":material/expand_more:",
                      type="tertiary", width="stretch")


def conversation_sidebar(lang: str, view: Snapshot) -> None:
    with st.sidebar:
        st.html(STYLE.format(menu=t(lang, "chat_menu")))
        st.button(t(lang, "new_chat"), on_click=open_conversation, args=(None,), icon=":material/add:",
                  width="stretch", key=NEW_CHAT_KEY)
        query = st.text_input(t(lang, "search_conversations"), key=SEARCH_KEY, label_visibility="collapsed",
                              placeholder=t(lang, "search_conversations"), on_change=_search_changed)
        _listed(lang, query, view.cid)
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
