"""The open conversation: saved as it happens, replayed from the store, its messages' actions. The turn
being answered below the history (the live answer, the chat box) is atri/ui/chat_turn.py; what may be done
with a message is decided in atri/conversation.py."""
from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from atri.answers import LiveAnswer, TurnSetup
from atri.conversation import busy, can_act_on, settled
from atri.i18n import t
from atri.messages import Message
from atri.store import EMPTY, DocumentInfo, Snapshot, StoredMessage
from atri.ui.asking import ask_for_answer, conversation_id, open_conversation, send_question, start_answer, switch_model
from atri.ui.browser_script import EDIT_KEY, page_script
from atri.ui.composer import send_queued
from atri.ui.config import get_answerer, get_store, load_settings, price_for
from atri.ui.context_panel import conversation_totals
from atri.ui.documents_panel import document_label
from atri.ui.identity import current_owner
from atri.ui.render import show_message
from atri.ui.session import EDIT_TEXT, PendingAnswer, session
from atri.ui.share_page import share_url
from atri.ui.sidebar import ChatSetup
from atri.ui.streamlit_workarounds import hide_while
from atri.ui.toolbar import icon_only, toolbar_style

RECENT_MESSAGES = 4  # the last two turns show their details at once; older ones on demand
HISTORY_WINDOW = 30  # messages drawn when a conversation opens
HISTORY_STEP = 100  # more on each "Show earlier messages"


def open_view(lang: str) -> Snapshot:
    """The open conversation, read once per page run for the sidebar (the conversation part reads it again
    on its own runs). Read on every run (not kept in the session): another tab of the same browser may
    have written. A link to a conversation this visitor does not own opens a new chat instead.
    """
    session.answer_setup = None  # until this run's sidebar has made its choices (a run may be cut short)
    cid = conversation_id()
    view = get_store().snapshot(current_owner(), cid) if cid else EMPTY
    if cid and view.info is None and not session.pending:
        st.warning(t(lang, "not_found"))
        open_conversation(None)
    session.sidebar_drawn_for = sidebar_key(view)
    return view


def sidebar_key(view: Snapshot) -> tuple[object, ...]:
    """What the sidebar shows of the open conversation: its place in the list, its title, the messages the
    context meter counts."""
    return view.cid, view.info.title if view.info else None, tuple(item.id for item in view.thread)


def attach() -> tuple[Snapshot, LiveAnswer | None]:
    """The open conversation as saved, and the answer this process is writing for it, drawn live rather
    than from the read. Asked before the read: an answer that ends in between is drawn live to its end,
    never from a read that still has it half-written."""
    cid = conversation_id()
    if not cid:
        return EMPTY, None
    live = get_answerer().live(current_owner(), cid)  # (the answerer's start-up marks a dead process's answers)
    drawn_live = live is not None and live.active
    return get_store().snapshot(current_owner(), cid), live if drawn_live else None


def _still_shown(item: StoredMessage) -> bool:
    cid, owner = conversation_id(), current_owner()
    return can_act_on(get_store().snapshot(owner, cid or ""), get_answerer().live(owner, cid), item.id)


def _regenerate(item: StoredMessage) -> None:
    """Retry or regenerate: the old answer stays reachable as a variant."""
    if not _still_shown(item):
        return
    get_store().retire_from(current_owner(), conversation_id(), item.position)
    ask_for_answer(PendingAnswer(conversation_id(), item.position))


def _regenerate_with(item: StoredMessage, provider_id: str, model_id: str) -> None:
    """Regenerate with another of the provider's models, which the chat then goes on with."""
    if _still_shown(item):
        switch_model(provider_id, model_id)
        _regenerate(item)


def _delete(item: StoredMessage) -> None:
    session.deleting = None
    if _still_shown(item):
        get_store().delete_message(current_owner(), item.id)
        session.editing = None


def _delete_control(lang: str, item: StoredMessage, after: int) -> None:
    """Delete: at once for the conversation's last message; for an earlier one, which takes the `after` messages
    that follow it, the question is asked under the message (`_under_message`)."""
    key = _key("delete", item, last=after == 0)
    with icon_only(key):
        st.button(t(lang, "delete_message"), icon=":material/delete:", key=key, type="tertiary",
                  help=t(lang, "delete_message"), on_click=_delete if after == 0 else _ask_to_delete, args=(item,))


def _ask_to_delete(item: StoredMessage | None) -> None:
    session.deleting = None if item is None or session.deleting == item.id else item.id


def _other_models(lang: str, item: StoredMessage) -> None:
    """Regenerate with another model of the provider: under the last answer (a popover of buttons under every
    answer would make each page run draw them all)."""
    if session.model_choices is None:
        return
    provider_id, choices = session.model_choices
    used = item.message.facts.model if item.message.facts else ""
    others = [model for model in choices if model != used]
    if not others:
        return
    with icon_only("regenerate_with"), st.popover(t(lang, "regenerate_with"), icon=":material/swap_horiz:",
                                                  type="tertiary", key="regenerate_with", help=t(lang, "regenerate_with")):
        for model in others:
            st.button(model, key=f"regenerate_with::{model}", type="tertiary", on_click=_regenerate_with,
                      args=(item, provider_id, model))


def _share_up_to(item: StoredMessage) -> None:
    token = get_store().create_share(current_owner(), conversation_id() or "", item.id)
    session.share_made = token
    session.answer_shared = (item.id, token) if token else None


def _share_control(lang: str, item: StoredMessage) -> None:
    """Share the chat up to this answer: a read-only copy at its own link, shown under the answer (the chat's ⋯
    menu lists and revokes them)."""
    key = f"share_answer::{item.id}"
    with icon_only(key):
        st.button(t(lang, "share_answer"), icon=":material/share:", key=key, type="tertiary",
                  help=t(lang, "share_answer"), on_click=_share_up_to, args=(item,))


def _under_message(lang: str, item: StoredMessage, after: int) -> None:
    """What one message's button opened, drawn for that message alone (a popover under every message would make
    each page run draw all their contents): its share link, or the question before deleting it and what follows."""
    shared = session.answer_shared
    if shared is not None and shared[0] == item.id:
        st.caption(t(lang, "share_answer_made"))
        st.code(share_url(st.context.url or "", shared[1]), language=None, wrap_lines=True)
    if session.deleting == item.id:
        with st.container(horizontal=True, vertical_alignment="center", gap="small"):
            st.caption(t(lang, "delete_message_and_after", count=after))
            st.button(t(lang, "delete_message"), key=f"delete::{item.id}::confirm", type="primary", on_click=_delete,
                      args=(item,))
            st.button(t(lang, "cancel"), key="cancel_delete", on_click=_ask_to_delete, args=(None,))


def _answer_again() -> None:
    ask_for_answer(PendingAnswer(conversation_id()))


def _show_variant(item: StoredMessage, step: int) -> None:
    if _still_shown(item):
        get_store().show_variant(current_owner(), item.id, step)


def _branch_off(item: StoredMessage) -> None:
    """A new chat with this conversation up to `item`, to go on from there."""
    cid = get_store().branch_off(current_owner(), conversation_id() or "", item.id)
    if cid is not None:
        open_conversation(cid)


def _key(name: str, item: StoredMessage, last: bool) -> str:
    """A button's key: the plain name under the last question or answer (the page's script and the tests find
    those), the name and the message's id under an earlier one."""
    return name if last else f"{name}::{item.id}"


def _send_edit(item: StoredMessage) -> None:
    text = st.session_state.get(EDIT_TEXT, "").strip()
    if not text or not _still_shown(item):
        return
    get_store().retire_from(current_owner(), conversation_id(), item.position)
    send_question(Message("user", text, images=item.message.images, thumbnails=item.message.thumbnails),
          position=item.position)


def _answer_actions(lang: str, item: StoredMessage, failed: bool, last: bool, after: int,
                    sharing: bool) -> Callable[[], None]:
    """Regenerate (Retry, with its label, after an error; with another model under the last answer), the
    variants' ‹ n / m › beside it, a new chat from here, delete. Any answer: regenerating an earlier one starts
    a branch; ‹ n / m › brings the other back."""
    def draw() -> None:
        if failed:
            st.button(t(lang, "retry"), icon=":material/refresh:", key=_key("regenerate", item, last), type="tertiary",
                      on_click=_regenerate, args=(item,))
        else:
            with icon_only(_key("regenerate", item, last)):
                st.button(t(lang, "regenerate"), icon=":material/autorenew:", key=_key("regenerate", item, last),
                          type="tertiary", help=t(lang, "regenerate"), on_click=_regenerate, args=(item,))
        if last:
            _other_models(lang, item)
        with icon_only(_key("branch", item, last)):
            st.button(t(lang, "branch_new_chat"), icon=":material/call_split:", key=_key("branch", item, last),
                      type="tertiary", help=t(lang, "branch_new_chat"), on_click=_branch_off, args=(item,))
        if sharing:
            _share_control(lang, item)
        _delete_control(lang, item, after)
        _variants(item, last)
    return draw


def _variants(item: StoredMessage, last: bool) -> None:
    if item.variants > 1:
        kind = "variant" if item.message.role == "assistant" else "question_variant"
        st.button("‹", key=_key(f"{kind}_prev", item, last), type="tertiary", on_click=_show_variant,
                  args=(item, -1), disabled=item.variant == 1)
        st.caption(f"{item.variant} / {item.variants}")
        st.button("›", key=_key(f"{kind}_next", item, last), type="tertiary", on_click=_show_variant,
                  args=(item, 1), disabled=item.variant == item.variants)


def _set_editing(message_id: int | None) -> None:
    session.editing = message_id


def _question_actions(lang: str, item: StoredMessage, answered: bool, last: bool, after: int) -> Callable[[], None]:
    """Edit (any question: an earlier one starts a branch), delete, its variants, and "Get an answer" for a
    question left without one."""
    def draw() -> None:
        with icon_only(_key(EDIT_KEY, item, last)):
            st.button(t(lang, "edit"), icon=":material/edit:", key=_key(EDIT_KEY, item, last), type="tertiary",
                      help=t(lang, "edit"), on_click=_set_editing, args=(item.id,))
        _delete_control(lang, item, after)
        _variants(item, last)
        if not answered:
            st.button(t(lang, "get_answer"), icon=":material/send:", key="answer_again", type="tertiary",
                      on_click=_answer_again)
    return draw


def _edit_form(lang: str, item: StoredMessage) -> None:
    st.text_area(t(lang, "edit_message"), value=item.message.content, key=EDIT_TEXT)
    with st.container(horizontal=True, gap="xsmall"):
        st.button(t(lang, "send_edit"), type="primary", key="send_edit", on_click=_send_edit, args=(item,))
        st.button(t(lang, "cancel"), key="cancel_edit", on_click=_set_editing, args=(None,))


def _actions(lang: str, thread: list[StoredMessage], index: int, sharing: bool) -> Callable[[], None] | None:
    """What can be done with this message: every question can be edited and every answer regenerated
    (earlier ones start a branch, kept as ‹ n / m ›)."""
    item = thread[index]
    last_of_role = all(later.message.role != item.message.role for later in thread[index + 1:])
    after = len(thread) - index - 1
    if item.message.role == "assistant":
        return _answer_actions(lang, item, bool(item.message.facts and item.message.facts.error_kind), last_of_role,
                               after, sharing)
    if item.message.role == "user":
        return _question_actions(lang, item, answered=after > 0, last=last_of_role, after=after)
    return None


def show_history(lang: str, view: Snapshot, live: LiveAnswer | None, documents: list[DocumentInfo]) -> None:
    """`live`: the answer this run draws live (attach; its stored row, if read already, is not drawn here).
    `documents`: the conversation's, each shown with the question it came with."""
    thread, taken = _share_with_turn(view, live, settled(view.thread, live))
    session.history_drawn = (view.cid, len(thread))
    _hidden_while_the_turn_shows(taken)
    busy_now = live is not None or busy(view)
    first = _first_shown(lang, view)
    sharing = load_settings().config.share_links != "off"  # (read once: it reads .env and the secrets)
    for index, item in enumerate(thread[first:], start=first):
        actions = None if busy_now else _actions(lang, thread, index, sharing)
        editing = session.editing == item.id and actions is not None
        with st.container(key=_message_key(item)):
            show_message(lang, item.message, view.by_id, recent=index >= len(thread) - RECENT_MESSAGES,
                         attached=attached(lang, item, documents), actions=None if editing else actions,
                         last=index == len(thread) - 1)
            if editing:
                _edit_form(lang, item)
            elif actions is not None:
                _under_message(lang, item, len(thread) - index - 1)


def _share_with_turn(view: Snapshot, live: LiveAnswer | None,
                     thread: list[StoredMessage]) -> tuple[list[StoredMessage], list[StoredMessage]]:
    """The messages this page run's history draws, and those of them the turn below (`turn`) showed until now.

    While the turn draws an answer live, the history leaves it the question it drew too: moved up here in
    the middle of the answer, the question would show twice (here, and there until the turn draws again).
    Once the answer is saved, the history takes them over."""
    shown_cid, start, shown = session.turn_shown
    ours = shown > 0 and shown_cid == view.cid
    keeps = ours and live is not None
    session.turn_outdated = shown > 0 and not keeps
    if keeps:
        return thread[:start], []
    return thread, thread[start:] if ours else []


def _message_key(item: StoredMessage) -> str:
    return f"message_{item.id}"


def turn_box_key(place: int) -> str:
    return f"turn_box_{place}"


def _hidden_while_the_turn_shows(taken: list[StoredMessage]) -> None:
    """The messages the history takes over from the turn stay hidden for as long as the turn's box, at its
    old place, still shows them: they appear in the frame that removes them there, never both at once."""
    hide_while(turn_box_key(session.turn_box_at), [_message_key(item) for item in taken])


def attached(lang: str, item: StoredMessage, documents: list[DocumentInfo]) -> list[str]:
    """The labels of the documents sent with this question."""
    return [document_label(lang, d) for d in documents if d.message_id == item.id]


def _first_shown(lang: str, view: Snapshot) -> int:
    """The index of the first message drawn: the last HISTORY_WINDOW when the conversation opens, earlier
    ones on demand, so that a long chat costs a run no more than a short one.

    While the chat goes on, the first message drawn stays put: the drawn messages keep their places and
    the browser draws only the new ones (a window sliding at every turn would redraw every message). It
    moves on once a whole window has been added, unless the visitor asked for earlier messages."""
    cid = view.cid or ""
    latest = max(0, len(view.thread) - HISTORY_WINDOW)
    first, asked = session.history_start.get(cid, (latest, False))
    if first > latest or (not asked and latest - first >= HISTORY_WINDOW):
        first, asked = latest, False
    session.history_start = {**session.history_start, cid: (first, asked)}
    if first:
        st.button(t(lang, "show_earlier", count=min(first, HISTORY_STEP)), icon=":material/expand_less:",
                  key="show_earlier", on_click=_show_earlier, args=(cid, max(0, first - HISTORY_STEP)))
    return first


def _show_earlier(cid: str, first: int) -> None:
    session.history_start = {**session.history_start, cid: (first, True)}


def turn_setup(setup: ChatSetup) -> TurnSetup:
    return TurnSetup(setup.options, setup.connection, setup.model, setup.count, setup.context,
                     price_for(setup.model.id), tools=setup.toolbox)


def start_pending_answer(setup: ChatSetup) -> None:
    """Keep this run's choices for the next question's callback, and hand over a question the callback
    could not start; the conversation part then only attaches."""
    session.answer_setup = turn_setup(setup)
    send_queued()
    pending, session.pending = session.pending, None
    if pending is not None and pending.conversation == conversation_id():
        start_answer(pending, session.answer_setup)


def conversation(lang: str, documents: list[DocumentInfo]) -> None:
    """The open conversation as saved; the turn (`turn`) comes below it. `documents`: the conversation's, as
    the page run read them for the sidebar."""
    view, live = attach()
    toolbar_style()
    page_script(lang)
    conversation_totals(lang, view)
    show_history(lang, view, live, documents)
