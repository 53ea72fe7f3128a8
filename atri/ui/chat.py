"""The open conversation: saved as it happens, replayed from the store, its messages' actions. The turn
being answered below the history (the live answer, the chat box) is atri/ui/chat_turn.py; what may be done
with a message is decided in atri/conversation.py."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import streamlit as st

from atri.answers import LiveAnswer, TooManyAnswers, TurnSetup
from atri.conversation import CannotSee, busy, can_act_on, image_links, save_question, send_refusal, settled
from atri.documents import DocumentProblem, Upload, check_document_isolated, document_kind, scanned_pages_isolated
from atri.i18n import t
from atri.images import ImageBatch, file_to_data_url
from atri.messages import MAX_IMAGES, Message
from atri.store import EMPTY, DocumentInfo, Snapshot, StorageError, StoredMessage
from atri.ui.browser_script import EDIT_KEY, page_script
from atri.ui.config import current_language, get_answerer, get_store, price_for
from atri.ui.context_panel import conversation_totals, current_settings
from atri.ui.documents_panel import document_label
from atri.ui.identity import current_owner
from atri.ui.render import show_message
from atri.ui.session import CHAT_INPUT, EDIT_TEXT, HeldQuestion, PendingAnswer, custom_model_key, model_key, session
from atri.ui.sidebar import ChatSetup
from atri.ui.streamlit_workarounds import hide_while
from atri.ui.toolbar import icon_only, toolbar_style
from atri.ui.voice_input import transcribe_into_box
from atri.video import VideoProblem, frames_isolated, video_kind

RECENT_MESSAGES = 4  # the last two turns show their details at once; older ones on demand
HISTORY_WINDOW = 30  # messages drawn when a conversation opens
HISTORY_STEP = 100  # more on each "Show earlier messages"
# The question's callback lets the answer's request go out before its run draws the page: drawing and the
# answer's worker take turns at this process's GIL, and the request went out ~15 ms later while they did.
REQUEST_HEADSTART_S = 0.1


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


def on_submit() -> None:
    """The chat box's callback: the question with its files and the picture links written in it. Sent now,
    queued while an answer is being written (sent when it ends), or refused with the reason and put back."""
    value = st.session_state.get(CHAT_INPUT)
    if value is None:
        return
    text = value if isinstance(value, str) else (value.text or "")
    recording = None if isinstance(value, str) else value.get("audio")
    if recording is not None:
        transcribe_into_box(current_language(), text, recording.getvalue())
        return
    files = [] if isinstance(value, str) else list(value.files or [])
    batch = ImageBatch()
    documents: list[Upload] = []
    video: list[str] = []
    video_name = ""
    problems: list[tuple[str, dict[str, object]]] = []
    for upload in files:
        if document_kind(upload.name):
            documents += _checked_document(Upload(upload.name, upload.getvalue()), batch, problems)
        elif video_kind(upload.name) and video:
            problems.append(("video_one_only", {"name": video_name}))
        elif video_kind(upload.name):
            video, video_name = _video_frames(upload.name, upload.getvalue(), problems), upload.name
        else:
            file_to_data_url(upload.name, upload.getvalue(), batch)
    for link in image_links(text, MAX_IMAGES - len(batch.urls)):
        if link not in batch.urls:
            batch.urls.append(link)
            batch.thumbnails.append("")
    session.attachment_problems = batch.problems + problems
    if not text.strip() and not batch.urls and not documents and not video:
        return
    question = HeldQuestion(conversation_id(), Message("user", text, images=batch.urls, thumbnails=batch.thumbnails,
                                                       video=video), tuple(documents))
    refusal = send_refusal(session.send_guard, text, with_images=bool(batch.urls or video), with_video=bool(video))
    if refusal:
        session.unsent_question, session.unsent_reason = text, refusal
        session.held_question = question if isinstance(refusal, CannotSee) else None
        st.session_state[CHAT_INPUT] = text  # back in the chat box, to send again
        return
    if _answer_being_written(question.conversation):
        session.queued_question = question
    else:
        _send_held(question)


def _video_frames(name: str, data: bytes, problems: list[tuple[str, dict[str, object]]]) -> list[str]:
    """The clip's frames sampled in a worker with limits, or none and the reason among `problems`."""
    try:
        return frames_isolated(name, data)[1]
    except VideoProblem as refused:
        problems.append((refused.key, refused.values))
        return []


def _answer_being_written(cid: str | None) -> bool:
    live = get_answerer().live(current_owner(), cid) if cid else None
    return bool(cid) and ((live is not None and live.active) or busy(get_store().snapshot(current_owner(), cid)))


def _send_held(question: HeldQuestion) -> None:
    """Send a question kept back until now (shown to copy, and put back, when the database refuses it)."""
    try:
        _send(question.message, documents=question.documents)
    except StorageError:
        session.unsent_question = question.message.content
        st.session_state[CHAT_INPUT] = question.message.content


def send_queued() -> None:
    """The question typed while the last answer was written, once that answer has ended (a page run)."""
    queued = session.queued_question
    if queued is None or queued.conversation != conversation_id():
        return
    if not _answer_being_written(queued.conversation):
        session.queued_question = None
        _send_held(queued)


def cancel_queued() -> None:
    queued, session.queued_question = session.queued_question, None
    if queued is not None:
        st.session_state[CHAT_INPUT] = queued.message.content


def send_without_images() -> None:
    """The held question sent to the chosen model as text (its links stay in the text)."""
    held, session.held_question = session.held_question, None
    if held is not None:
        st.session_state[CHAT_INPUT] = ""
        _send_held(replace(held, message=replace(held.message, images=[], thumbnails=[], video=[])))


def send_with_seeing_model(provider_id: str, model_id: str) -> None:
    """One click on "Send to a model that can see": the model switched, and the held question sent with it
    (asked by the next page run, which draws the new model's choices)."""
    held, session.held_question = session.held_question, None
    session.unsent_question = session.unsent_reason = None
    if held is None:
        return
    st.session_state[model_key(provider_id)] = model_id
    st.session_state[custom_model_key(provider_id)] = ""
    session.answer_setup = None
    st.session_state[CHAT_INPUT] = ""
    _send_held(held)


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


def _send(message: Message, position: int | None = None, documents: tuple[Upload, ...] = ()) -> None:
    """Save the question before anything goes out, then ask for the answer (which reads the documents first)."""
    cid, made = save_question(get_store(), current_owner(), conversation_id(), message, position=position,
                              documents=documents, settings={"context": current_settings().to_dict()})
    if made:
        session.context_loaded_for = session.options_loaded_for = cid  # the widgets hold the new chat's choices
        st.query_params["c"] = cid
        session.needs_title = cid
    _ask_for_answer(PendingAnswer(cid, documents=documents))  # answered after the question, wherever it stands
    session.editing = None


def _still_shown(item: StoredMessage) -> bool:
    cid, owner = conversation_id(), current_owner()
    return can_act_on(get_store().snapshot(owner, cid or ""), get_answerer().live(owner, cid), item.id)


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
    """`live`: the answer this run draws live (attach; its stored row, if read already, is not drawn here).
    `documents`: the conversation's, each shown with the question it came with."""
    thread, taken = _share_with_turn(view, live, settled(view.thread, live))
    session.history_drawn = (view.cid, len(thread))
    _hidden_while_the_turn_shows(taken)
    busy_now = live is not None or busy(view)
    first = _first_shown(lang, view)
    for index, item in enumerate(thread[first:], start=first):
        actions = None if busy_now else _actions(lang, thread, index)
        editing = session.editing == item.id and actions is not None
        with st.container(key=_message_key(item)):
            show_message(lang, item.message, view.by_id, recent=index >= len(thread) - RECENT_MESSAGES,
                         attached=attached(lang, item, documents), actions=None if editing else actions,
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
        _start(pending, session.answer_setup)


def conversation(lang: str, documents: list[DocumentInfo]) -> None:
    """The open conversation as saved; the turn (`turn`) comes below it. `documents`: the conversation's, as
    the page run read them for the sidebar."""
    view, live = attach()
    toolbar_style()
    page_script(lang)
    conversation_totals(lang, view)
    show_history(lang, view, live, documents)


























