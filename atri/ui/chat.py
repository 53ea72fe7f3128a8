"""The open conversation: saved as it happens, replayed from the store, and driven one turn at a time."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import streamlit as st
from streamlit.delta_generator_singletons import context_dg_stack, get_default_dg_stack_value
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequestType
from streamlit.runtime.scriptrunner_utils.script_run_context import ThreadState

from atri.answers import LiveAnswer, TooManyAnswers, TurnSetup
from atri.documents import DOCUMENT_TYPES, DocumentProblem, Upload, check_document_isolated, document_kind, scanned_pages_isolated
from atri.i18n import t
from atri.images import ImageBatch, file_to_data_url, parse_image_urls
from atri.messages import Message
from atri.quotas import Standing
from atri.safe_markdown import plain_text
from atri.store import EMPTY, STREAMING, DocumentInfo, Snapshot, StorageError, StoredMessage, title_from
from atri.ui.browser_script import EDIT_KEY, STOP_KEY, page_script
from atri.ui.config import current_language, get_answerer, get_store, price_for
from atri.ui.context_panel import conversation_totals, current_settings
from atri.ui.documents_panel import conversation_documents, document_label
from atri.ui.identity import current_owner
from atri.ui.redraw import REDRAW_INTERVAL_S
from atri.ui.render import LiveAnswer as LiveDrawing
from atri.ui.render import quota_message, show_message
from atri.ui.session import CHAT_INPUT, EDIT_TEXT, IMAGE_URLS, PendingAnswer, session
from atri.ui.sidebar import ChatSetup
from atri.ui.toolbar import icon_only, toolbar_style

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator

IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "gif", "bmp"]
RECENT_MESSAGES = 4  # the last two turns show their details at once; older ones on demand
HISTORY_WINDOW = 30  # messages drawn when a conversation opens
HISTORY_STEP = 100  # more on each "Show earlier messages"
LIVE_WAIT_S = 0.25  # longest wait between redraws of a live answer (it redraws as soon as a piece arrives)
ELSEWHERE_REFRESH_S = 1.0
FINAL_DRAW_SEND_S = 0.03
# The embedded model and the browser share this machine's cores, and llama.cpp's threads wait for each other
# many times per token, so each change the browser draws stalls the model too. Answers drawn at each interval
# in alternation on 2 cores, median of 5 (tokens/s seen in the browser vs llama.cpp alone): 0.2 s 84 % and
# 83 % in two runs, 0.3 s 86 %, 0.4 s 89 %.
LOCAL_REDRAW_S = 0.4
# The question's callback lets the answer's request go out before its run draws the page: drawing and the
# answer's worker take turns at this process's GIL, and the request went out ~15 ms later while they did.
REQUEST_HEADSTART_S = 0.1
QUOTA_TICK_S = 1.0  # a refusal's "in 42 s" counts down at this pace...
QUOTA_COUNTDOWN_S = 120  # ...when the reset is this close (render._when says a clock time beyond)


def conversation_id() -> str | None:
    return st.query_params.get("c")


def open_conversation(cid: str | None) -> None:
    if cid:
        st.query_params["c"] = cid
    else:
        st.query_params.pop("c", None)
    session.pending = None
    session.editing = None
    session.history_start = {key: start for key, start in session.history_start.items() if key != cid}


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
    session.sidebar_drawn_for = _sidebar_key(view)
    return view


def _sidebar_key(view: Snapshot) -> tuple[object, ...]:
    """What the sidebar shows of the open conversation: its place in the list, its title, the messages the
    context meter counts."""
    return view.cid, view.info.title if view.info else None, tuple(item.id for item in view.thread)


def _attach() -> tuple[Snapshot, LiveAnswer | None]:
    """The open conversation as saved, and the answer this process is writing for it, drawn live rather
    than from the read. Asked before the read: an answer that ends in between is drawn live to its end,
    never from a read that still has it half-written."""
    cid = conversation_id()
    if not cid:
        return EMPTY, None
    live = get_answerer().live(current_owner(), cid)  # (the answerer's start-up marks a dead process's answers)
    drawn_live = live is not None and live.active
    return get_store().snapshot(current_owner(), cid), live if drawn_live else None


def _on_submit() -> None:
    value = st.session_state.get(CHAT_INPUT)
    if value is None:
        return
    text = value if isinstance(value, str) else (value.text or "")
    files = [] if isinstance(value, str) else list(value.files or [])
    batch: ImageBatch = parse_image_urls(st.session_state.get(IMAGE_URLS, ""))
    documents: list[Upload] = []
    problems: list[tuple[str, dict[str, object]]] = []
    for upload in files:
        if document_kind(upload.name):
            documents += _checked_document(Upload(upload.name, upload.getvalue()), batch, problems)
        else:
            file_to_data_url(upload.name, upload.getvalue(), batch)
    session.attachment_problems = batch.problems + problems
    if not text.strip() and not batch.urls and not documents:
        return
    refusal = _refusal(text)
    if refusal:
        session.unsent_question, session.unsent_reason = text, refusal
        st.session_state[CHAT_INPUT] = text  # back in the chat box, to send again
        return
    try:
        _send(Message("user", text, images=batch.urls, thumbnails=batch.thumbnails), documents=tuple(documents))
    except StorageError:
        session.unsent_question = text  # shown with the reason, to copy and send again
        st.session_state[CHAT_INPUT] = text
        return
    st.session_state[IMAGE_URLS] = ""


def _checked_document(upload: Upload, batch: ImageBatch, problems: list[tuple[str, dict[str, object]]]) -> list[Upload]:
    """The document, if it can be read; else its problem is told. A scan's pages go as images instead."""
    try:
        check_document_isolated(upload.name, upload.data)
        return [upload]
    except DocumentProblem as problem:
        if problem.key != "document_scanned":
            problems.append((problem.key, problem.values))
            return []
    try:
        images, pages = scanned_pages_isolated(upload.name, upload.data)
    except DocumentProblem as problem:
        problems.append((problem.key, problem.values))
        return []
    for name, data in images:
        file_to_data_url(name, data, batch)
    problems.append(("document_scanned_sent", {"name": upload.name, "sent": len(images), "pages": pages}) if images
                    else ("document_scanned", {"name": upload.name}))
    return []


def _refusal(text: str) -> str | Standing | None:
    """Why a question cannot go out at all, before it is saved: a limit used up (until it resets: the guard is
    the last run's), or longer than the model's whole window (a million characters would otherwise go to the
    provider as they are)."""
    guard = session.send_guard
    if guard is None:
        return None
    if guard.quota_refusal and guard.quota_refusal.resets_at > time.time():
        return guard.quota_refusal
    tokens = guard.count(text)
    if tokens > guard.model_window:
        lang = current_language()
        return t(lang, "question_too_long", tokens=tokens, window=guard.model_window, model=guard.model_id)
    return None


def _send(message: Message, position: int | None = None, documents: tuple[Upload, ...] = ()) -> None:
    """Save the question before anything goes out, then ask for the answer (which reads the documents first)."""
    store, owner = get_store(), current_owner()
    cid = conversation_id()
    if cid is None or store.conversation(owner, cid) is None:
        cid = store.create_conversation(owner, title_from(message.content) or _untitled(message, documents),
                                        settings={"context": current_settings().to_dict()})
        session.context_loaded_for = session.options_loaded_for = cid  # the widgets hold the new chat's choices
        st.query_params["c"] = cid
        session.needs_title = cid
    store.append(owner, cid, message, position=position)
    _ask_for_answer(PendingAnswer(cid, documents=documents))  # answered after the question, wherever it stands
    session.editing = None


def _untitled(message: Message, documents: tuple[Upload, ...]) -> str:
    """The title of a chat opened with no words: its document's name, or a picture."""
    return f"📄 {title_from(documents[0].name)}" if documents and not message.images else "🖼"


def _still_shown(item: StoredMessage) -> bool:
    """The message a button was drawn under is still shown and nothing is being answered. The history is not
    drawn again while a turn runs, so its buttons can outlive their place."""
    cid, owner = conversation_id(), current_owner()
    view, live = get_store().snapshot(owner, cid or ""), get_answerer().live(owner, cid)
    return item.id in {shown.id for shown in view.thread} and not _busy(view) and not (live and live.active)


def _regenerate(item: StoredMessage) -> None:
    """Retry or regenerate: the old answer stays reachable as a variant."""
    if not _still_shown(item):
        return
    get_store().retire_from(current_owner(), conversation_id(), item.position)
    _ask_for_answer(PendingAnswer(conversation_id(), item.position))


def _answer_again() -> None:
    _ask_for_answer(PendingAnswer(conversation_id()))


def _ask_for_answer(pending: PendingAnswer) -> None:
    """Called from the chat box's and buttons' callbacks: the answer starts at once, with the choices the
    last run's sidebar made (nothing in the sidebar can change without a run), while this run draws the
    page. Before any run has made them, the run hands it over instead."""
    if session.answer_setup is None:
        session.pending = pending
    else:
        _start(pending, session.answer_setup)


def _start(pending: PendingAnswer, setup: TurnSetup) -> None:
    wants_title = session.needs_title == pending.conversation
    if wants_title:
        session.needs_title = None
    try:
        live = get_answerer().start(current_owner(), pending.conversation, replace(setup, documents=pending.documents),
                                    pending.position, wants_title)
        live.wait_until_asked(REQUEST_HEADSTART_S)
    except TooManyAnswers as limit:
        session.answers_refused = limit.args[0]
        if pending.documents:  # kept for when the question is asked again
            get_answerer().keep_documents(current_owner(), pending.conversation, pending.documents, setup.count)


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
    _send(Message("user", text, images=item.message.images, thumbnails=item.message.thumbnails),
          position=item.position)


def _answer_actions(lang: str, item: StoredMessage, failed: bool, last: bool) -> Callable[[], None]:
    """Regenerate (Retry, with its label, after an error), the variants' ‹ n / m › beside it, and a new chat
    from here. Any answer: regenerating an earlier one starts a branch; ‹ n / m › brings the other back."""
    def draw() -> None:
        if failed:
            st.button(t(lang, "retry"), icon=":material/refresh:", key=_key("regenerate", item, last), type="tertiary",
                      on_click=_regenerate, args=(item,))
        else:
            with icon_only(_key("regenerate", item, last)):
                st.button(t(lang, "regenerate"), icon=":material/autorenew:", key=_key("regenerate", item, last),
                          type="tertiary", help=t(lang, "regenerate"), on_click=_regenerate, args=(item,))
        with icon_only(_key("branch", item, last)):
            st.button(t(lang, "branch_new_chat"), icon=":material/call_split:", key=_key("branch", item, last),
                      type="tertiary", help=t(lang, "branch_new_chat"), on_click=_branch_off, args=(item,))
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


def _question_actions(lang: str, item: StoredMessage, answered: bool, last: bool) -> Callable[[], None]:
    """Edit (any question: an earlier one starts a branch), its variants, and "Get an answer" for a question
    left without one."""
    def draw() -> None:
        with icon_only(_key(EDIT_KEY, item, last)):
            st.button(t(lang, "edit"), icon=":material/edit:", key=_key(EDIT_KEY, item, last), type="tertiary",
                      help=t(lang, "edit"), on_click=_set_editing, args=(item.id,))
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


def _actions(lang: str, thread: list[StoredMessage], index: int) -> Callable[[], None] | None:
    """What can be done with this message: every question can be edited and every answer regenerated
    (earlier ones start a branch, kept as ‹ n / m ›)."""
    item = thread[index]
    last_of_role = all(later.message.role != item.message.role for later in thread[index + 1:])
    if item.message.role == "assistant":
        return _answer_actions(lang, item, bool(item.message.facts and item.message.facts.error_kind), last_of_role)
    if item.message.role == "user":
        return _question_actions(lang, item, answered=index < len(thread) - 1, last=last_of_role)
    return None


def show_history(lang: str, view: Snapshot, live: LiveAnswer | None, documents: list[DocumentInfo]) -> None:
    """`live`: the answer this run draws live (_attach; its stored row, if read already, is not drawn here).
    `documents`: the conversation's, each shown with the question it came with."""
    thread, taken = _share_with_turn(view, live, _settled(view.thread, live))
    session.history_drawn = (view.cid, len(thread))
    _hidden_while_the_turn_shows(taken)
    busy = live is not None or _busy(view)
    first = _first_shown(lang, view)
    for index, item in enumerate(thread[first:], start=first):
        actions = None if busy else _actions(lang, thread, index)
        editing = session.editing == item.id and actions is not None
        with st.container(key=_message_key(item)):
            show_message(lang, item.message, view.by_id, recent=index >= len(thread) - RECENT_MESSAGES,
                         attached=_attached(lang, item, documents), actions=None if editing else actions,
                         last=index == len(thread) - 1)
            if editing:
                _edit_form(lang, item)


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


def _turn_box_key(place: int) -> str:
    return f"turn_box_{place}"


def _hidden_while_the_turn_shows(taken: list[StoredMessage]) -> None:
    """The messages the history takes over from the turn stay hidden for as long as the turn's box, at its
    old place, still shows them: they appear in the frame that removes them there, never both at once (the
    browser draws what has come every 10 ms, and drawing an answer takes longer). Drawn on every run, even
    with nothing to hide: the browser loads what draws it on first use, a frame too late for the first answer."""
    old_box = f".st-key-{_turn_box_key(session.turn_box_at)}"
    taken_over = ", ".join(f".st-key-{_message_key(item)}" for item in taken) or ".st-key-none"
    st.html(f'<style>body:has({old_box} [data-testid="stChatMessage"]) :is({taken_over}) {{display: none;}}</style>')


def _attached(lang: str, item: StoredMessage, documents: list[DocumentInfo]) -> list[str]:
    """The labels of the documents sent with this question."""
    return [document_label(lang, d) for d in documents if d.message_id == item.id]


def _settled(thread: list[StoredMessage], live: LiveAnswer | None) -> list[StoredMessage]:
    """The thread without the answer drawn live (its stored row, if read already, is drawn from memory)."""
    if live is not None and thread and (thread[-1].id == live.message_id or _being_written(thread[-1])):
        return thread[:-1]
    return thread


def _notices(lang: str) -> None:
    """What the last question's callback has to tell, once."""
    refused, session.answers_refused = session.answers_refused, None
    if refused:
        st.warning(t(lang, "too_many_answers", limit=refused), icon=":material/hourglass:")
    for key, values in session.attachment_problems:
        st.warning(t(lang, key, **{name: plain_text(v) if isinstance(v, str) else v for name, v in values.items()}))
    unsent, session.unsent_question = session.unsent_question, None
    reason, session.unsent_reason = session.unsent_reason, None
    if unsent:
        if isinstance(reason, Standing):
            _quota_countdown(lang, reason)
        elif reason:
            st.error(reason, icon=":material/block:")
        else:
            st.error(t(lang, "question_not_saved"), icon=":material/database:")
        st.code(unsent, language="text", wrap_lines=True)


def _quota_countdown(lang: str, limit: Standing) -> None:
    """The refusal of a used-up limit, its "in 42 s" counting down each second (a fragment of its own, ended
    by the next run of the turn); once the limit has reset, it says the question can go."""
    @st.fragment(run_every=QUOTA_TICK_S if limit.resets_at - time.time() < QUOTA_COUNTDOWN_S else None)
    def countdown() -> None:
        if limit.resets_at > time.time():
            st.error(quota_message(lang, limit.what, limit.limit, limit.resets_at), icon=":material/block:")
        else:
            st.success(t(lang, "quota_reset_now"), icon=":material/check_circle:")
    countdown()


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


def chat_input(lang: str) -> None:
    """Pinned below the page, and submitted to the turn's fragment (the widget belongs to the fragment that
    draws it). Drawn as if from the page's top level: only a chat box from there keeps the page scrolled to
    the newest message (Streamlit's `is_auto_positioned_at_bottom`; `st.bottom.chat_input` is not)."""
    outside_fragment = context_dg_stack.set(get_default_dg_stack_value())
    try:
        st.chat_input(t(lang, "chat_placeholder"), key=CHAT_INPUT, on_submit=_on_submit,
                      accept_file="multiple", file_type=[*IMAGE_TYPES, *DOCUMENT_TYPES], submit_mode="disable")
    finally:
        context_dg_stack.reset(outside_fragment)


def turn_setup(setup: ChatSetup) -> TurnSetup:
    return TurnSetup(setup.options, setup.connection, setup.model, setup.count, setup.context,
                     price_for(setup.model.id), tools=setup.toolbox)


def start_pending_answer(setup: ChatSetup) -> None:
    """Keep this run's choices for the next question's callback, and hand over a question the callback
    could not start; the conversation part then only attaches."""
    session.answer_setup = turn_setup(setup)
    pending, session.pending = session.pending, None
    if pending is not None and pending.conversation == conversation_id():
        _start(pending, session.answer_setup)


def conversation(lang: str, documents: list[DocumentInfo]) -> None:
    """The open conversation as saved; the turn (`turn`) comes below it. `documents`: the conversation's, as
    the page run read them for the sidebar."""
    view, live = _attach()
    toolbar_style()
    page_script(lang)
    conversation_totals(lang, view)
    show_history(lang, view, live, documents)


@st.fragment
def turn(lang: str, offline: bool) -> None:
    """What the history above does not show yet (the question just asked), the answer being written, and the
    chat box. A question, its answer and Stop run only this part: neither the history nor the sidebar is
    drawn again for a turn, so a turn costs the same in a long chat as in a short one. The whole page runs
    again once the answer is saved (the sidebar then lists a new chat), or, before anything is drawn, when
    something the sidebar shows has changed.

    Call it where the page has drawn the same number of elements on every run (everything above it in one
    container): Streamlit names a fragment after its place, and a question sent from a chat box drawn under
    another name, while the page runs, is dropped with the name."""
    with _turn_box():
        _turn_body(lang, offline)
    chat_input(lang)


def _turn_box() -> DeltaGenerator:
    """The turn's elements, in one box with two places. Drawn again at its place, the box keeps what it showed
    until each piece is drawn again (Streamlit keeps a block's content when the same kind of block comes to
    its place): a page run in the middle of an answer goes on showing it. Once the history above has taken
    over what the box showed (the answer saved, another conversation opened), the box moves to its other
    place, and the empty element put at the old one clears it at once rather than when the run ends; the
    history's copies, hidden until then (`_hidden_while_the_turn_shows`), appear in that same frame."""
    if session.turn_outdated:
        session.turn_outdated, session.turn_shown = False, (None, 0, 0)
        session.turn_box_at = 1 - session.turn_box_at
    key = _turn_box_key(session.turn_box_at)
    if session.turn_box_at == 0:
        box = st.container(key=key)
        st.empty()
        return box
    st.empty()
    return st.container(key=key)


def _turn_body(lang: str, offline: bool) -> None:
    view, live = _attach()
    if session.pending is not None or _sidebar_behind(view, live):  # before anything is drawn (or told once)
        st.rerun(scope="app")
    if not view.thread and live is None:
        st.caption(t(lang, "empty_chat"))
        if offline:
            st.caption(t(lang, "offline_hint"))
    cid, drawn = session.history_drawn
    settled = _settled(view.thread, live)
    added = settled[drawn:] if cid in (view.cid, None) else []  # None: drawn as the empty chat, made since
    documents = conversation_documents(view) if added else []
    for item in added:
        show_message(lang, item.message, view.by_id,
                     attached=_attached(lang, item, documents))
    session.turn_shown = (view.cid, len(settled) - len(added), len(added) + (live is not None))
    _notices(lang)
    follow_answer(lang, view, live)


def _sidebar_behind(view: Snapshot, live: LiveAnswer | None) -> bool:
    """The sidebar shows another conversation, or this one before a change other than an answer being
    written here. A new chat's first answer is drawn first: the page runs again when it ends, and a run
    of the whole page before it would hold back its first words."""
    drawn = session.sidebar_drawn_for
    if drawn is None:
        return True
    if drawn[0] is None and live is not None:
        return False  # a new chat's first answer
    if drawn[0] != view.cid:
        return True
    return live is None and not _busy(view) and drawn != _sidebar_key(view)


def _stop(cid: str) -> None:
    get_answerer().stop(current_owner(), cid)


def follow_answer(lang: str, view: Snapshot, live: LiveAnswer | None) -> None:
    """Draw the answer this process is writing for the open conversation (_attach), live, until it
    ends; an answer being written by another replica is shown as saved and looked at again every second."""
    if live is not None:
        region = st.container()
        if not live.done.is_set():  # outside the answer's region: a click reruns this part, and that run re-attaches
            st.button(t(lang, "stop"), key=STOP_KEY, icon=":material/stop_circle:", on_click=_stop, args=(view.cid,))
        with region:
            _live_answer(lang, live)
    elif _busy(view):
        _written_elsewhere()


def _busy(view: Snapshot) -> bool:
    """The conversation's last answer is still being written (here or by another server)."""
    return bool(view.thread and _being_written(view.thread[-1]))


def _being_written(item: StoredMessage) -> bool:
    return bool(item.message.facts and item.message.facts.error_kind == STREAMING)


def _live_answer(lang: str, live: LiveAnswer) -> None:
    """Redraw the answer as it grows, each piece as soon as the redraw interval allows. Any click ends this
    run, and the click's run attaches again: only Stop stops the answer."""
    with st.chat_message("assistant"):
        status = st.empty()
        drawing = LiveDrawing(lang, LOCAL_REDRAW_S if live.local else REDRAW_INTERVAL_S)
        drawn_version, drawn, shown_status = -1, True, None
        while not live.done.is_set():
            if _click_waiting():
                return
            if live.version != drawn_version or not drawn:
                drawn_version = live.version
                drawing.queued(live.queue_position if live.phase == "queued" else 0)
                note = _phase_note(lang, live)
                if note != shown_status:  # each change the browser gets costs it a redraw of the page
                    if note:
                        status.caption(note)
                    else:
                        status.empty()
                    shown_status = note
                if note is None and live.turn is not None:
                    drawn = drawing.draw(live.turn, final=live.phase == "done")  # done: saved, a title may follow
            live.wait_for_change(drawn_version, LIVE_WAIT_S if drawn else drawing.next_draw_in())
        if live.turn is not None:
            drawing.draw(live.turn, final=True)
        if live.unsaved:
            st.warning(t(lang, "error_storage"), icon=":material/database:")
            if session.sidebar_drawn_for is not None and session.sidebar_drawn_for[0] == live.cid:
                return  # drawn from here, with this warning, until the database takes it
    _rerun_page()  # saved: drawn with the history from now on; the sidebar gets the new chat or title (unsaved: too)


def _phase_note(lang: str, live: LiveAnswer) -> str | None:
    """What the answer is doing before its text comes, if it is not just waiting for it."""
    if live.phase == "summarising":
        return t(lang, "summarising")
    if live.phase in ("reading", "indexing"):
        name, done, total = live.progress
        return t(lang, f"{live.phase}_document", name=plain_text(name), done=done, total=total)
    return None


def _click_waiting() -> bool:
    """A click inside a fragment does not cut the running script short (Streamlit lets the run finish
    first), so a live answer would hold it until the answer ends. The answer's loop looks for one and
    ends the run itself. Streamlit's internals, as of the pinned 1.67: ScriptRequests holds the pending
    request, ThreadState the fragment running now."""
    ctx = get_script_run_ctx()
    requests = ctx.script_requests if ctx is not None else None
    if requests is None or getattr(requests, "_state", None) != ScriptRequestType.RERUN:
        return False
    # Only a run of the whole page or of this part: another fragment's timer (the documents' indexing
    # progress) waits for this run instead of ending the answer's drawing.
    fragments = getattr(getattr(requests, "_rerun_data", None), "fragment_id_queue", None) or []
    return not fragments or ThreadState.get().fragment_id in fragments


def _rerun_page() -> None:
    # Streamlit drops what it has not sent yet when the next run starts (AppSession._clear_queue on
    # SCRIPT_STARTED): a moment first lets the server send what this run drew, so the reader sees it now.
    time.sleep(FINAL_DRAW_SEND_S)
    st.rerun(scope="app")


@st.fragment(run_every=ELSEWHERE_REFRESH_S)
def _written_elsewhere() -> None:
    st.caption(f":material/sync: {t(current_language(), 'answer_elsewhere')}")
    if not _busy(get_store().snapshot(current_owner(), conversation_id() or "")):
        st.rerun()
