"""The open conversation: saved as it happens, replayed from the store, and driven one turn at a time."""
from __future__ import annotations

import contextlib
import secrets
import threading
from dataclasses import dataclass, replace

import streamlit as st

from atri.client import Cancel
from atri.context import input_budget, prepare_context, write_summary
from atri.errors import ChatError
from atri.i18n import t
from atri.images import ImageBatch, file_to_data_url, parse_image_urls
from atri.messages import Message
from atri.providers import LOCAL
from atri.request import build_request
from atri.saving import ProgressSaver
from atri.store import EMPTY, Snapshot, StorageError, Store, StoredMessage, title_from
from atri.titles import suggest_title
from atri.turn import Turn, estimate_usage, run_turn
from atri.ui.config import get_store, price_for
from atri.ui.context_panel import current_settings
from atri.ui.identity import current_owner
from atri.ui.render import LiveAnswer, show_message
from atri.ui.sidebar import ChatSetup

CHAT_INPUT_KEY = "chat_input"
IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "gif", "bmp"]
RECENT_MESSAGES = 4  # the last two turns show their details at once; older ones on demand


def conversation_id() -> str | None:
    return st.query_params.get("c")


def open_conversation(cid: str | None) -> None:
    if cid:
        st.query_params["c"] = cid
    else:
        st.query_params.pop("c", None)
    st.session_state.pending = None
    st.session_state.editing = False


def open_view(lang: str) -> Snapshot:
    """The open conversation, read once per run for everything the page draws.

    Read on every run (not kept in the session): another tab of the same browser may have written.
    A link to a conversation this visitor does not own opens a new chat instead.
    """
    cid = conversation_id()
    if not cid:
        return EMPTY
    view = get_store().snapshot(current_owner(), cid)
    if view.info is None and not st.session_state.get("pending"):
        st.warning(t(lang, "not_found"))
        open_conversation(None)
    return view


def _on_submit() -> None:
    value = st.session_state.get(CHAT_INPUT_KEY)
    if value is None:
        return
    text = value if isinstance(value, str) else (value.text or "")
    files = [] if isinstance(value, str) else list(value.files or [])
    batch: ImageBatch = parse_image_urls(st.session_state.get("image_urls", ""))
    for upload in files:
        file_to_data_url(upload.name, upload.getvalue(), batch)
    st.session_state.image_problems = batch.problems
    if not text.strip() and not batch.urls:
        return
    try:
        _send(Message("user", text, images=batch.urls, thumbnails=batch.thumbnails))
    except StorageError:
        st.session_state.unsent_question = text  # shown with the reason, to copy and send again
        return
    st.session_state.image_urls = ""


def _send(message: Message, position: int | None = None) -> None:
    """Save the question before anything goes out, then ask for the answer."""
    store, owner = get_store(), current_owner()
    cid = conversation_id()
    if cid is None or store.conversation(owner, cid) is None:
        cid = store.create_conversation(owner, title_from(message.content) or "🖼",
                                        settings={"context": current_settings().to_dict()})
        st.session_state.ctx_loaded_for = cid
        st.query_params["c"] = cid
        st.session_state.needs_title = cid
    store.append(owner, cid, message, position=position)
    st.session_state.pending = {"conversation": cid}
    st.session_state.editing = False


def _regenerate(item: StoredMessage) -> None:
    """Retry or regenerate: the old answer stays reachable as a variant."""
    get_store().retire_from(current_owner(), conversation_id(), item.position)
    st.session_state.pending = {"conversation": conversation_id(), "position": item.position}


def _answer_again() -> None:
    st.session_state.pending = {"conversation": conversation_id()}


def _show_variant(item: StoredMessage, step: int) -> None:
    get_store().show_variant(current_owner(), item.id, step)


def _send_edit(item: StoredMessage) -> None:
    text = st.session_state.get("edit_text", "").strip()
    if not text:
        return
    get_store().retire_from(current_owner(), conversation_id(), item.position)
    _send(Message("user", text, images=item.message.images, thumbnails=item.message.thumbnails),
          position=item.position)


def _answer_actions(lang: str, item: StoredMessage, failed: bool) -> None:
    columns = st.columns([1.6, 0.5, 0.8, 0.5, 3], vertical_alignment="center")
    label, icon = ("retry", ":material/refresh:") if failed else ("regenerate", ":material/autorenew:")
    columns[0].button(t(lang, label), icon=icon, key="regenerate", on_click=_regenerate, args=(item,))
    if item.variants > 1:
        columns[1].button("‹", key="variant_prev", on_click=_show_variant, args=(item, -1), disabled=item.variant == 1)
        columns[2].caption(f"{item.variant} / {item.variants}")
        columns[3].button("›", key="variant_next", on_click=_show_variant, args=(item, 1),
                          disabled=item.variant == item.variants)


def _question_actions(lang: str, item: StoredMessage, answered: bool) -> None:
    if st.session_state.get("editing"):
        st.text_area(t(lang, "edit_message"), value=item.message.content, key="edit_text")
        left, right, _ = st.columns([1, 1, 4])
        left.button(t(lang, "send_edit"), type="primary", key="send_edit", on_click=_send_edit, args=(item,))
        right.button(t(lang, "cancel"), key="cancel_edit", on_click=lambda: st.session_state.update(editing=False))
        return
    left, right, _ = st.columns([1, 1.4, 4])
    left.button(t(lang, "edit"), icon=":material/edit:", key="edit",
                on_click=lambda: st.session_state.update(editing=True))
    if not answered:
        right.button(t(lang, "get_answer"), icon=":material/send:", key="answer_again", on_click=_answer_again)


def show_history(lang: str, view: Snapshot, provider_id: str) -> None:
    thread = view.thread
    busy = bool(st.session_state.get("pending"))
    if not thread and not busy:
        st.caption(t(lang, "empty_chat"))
        if provider_id == LOCAL:
            st.caption(t(lang, "offline_hint"))
    for index, item in enumerate(thread):
        show_message(lang, item.message, view.by_id, recent=index >= len(thread) - RECENT_MESSAGES)
        last = index == len(thread) - 1
        if busy:
            continue
        if item.message.role == "assistant" and last:
            _answer_actions(lang, item, failed=bool(item.message.facts and item.message.facts.error_kind))
        elif item.message.role == "user" and (last or index == len(thread) - 2):
            _question_actions(lang, item, answered=not last)
    unsaved = st.session_state.get("unsaved_answer")
    if unsaved is not None and unsaved.cid == view.cid:
        if unsaved.saved.is_set() and unsaved.message.id in view.by_id:
            del st.session_state.unsaved_answer
        elif not unsaved.saved.is_set():
            show_message(lang, unsaved.message, view.by_id)
            st.warning(t(lang, "error_storage"), icon=":material/database:")
    for key, values in st.session_state.get("image_problems", []):
        st.warning(t(lang, key, **values))
    unsent = st.session_state.pop("unsent_question", None)
    if unsent:
        st.error(t(lang, "question_not_saved"), icon=":material/database:")
        st.code(unsent, language="text", wrap_lines=True)


def chat_input(lang: str) -> None:
    st.chat_input(t(lang, "chat_placeholder"), key=CHAT_INPUT_KEY, on_submit=_on_submit,
                  accept_file="multiple", file_type=IMAGE_TYPES, submit_mode="disable")


def _title_in_background(setup: ChatSetup, store: Store, owner: str, cid: str, question: Message, answer: Message) -> None:
    def work() -> None:
        title = suggest_title(setup.connection, setup.model, question, answer)
        if title:
            with contextlib.suppress(Exception):  # the chat may be gone by now; the first words stay
                store.rename(owner, cid, title)

    threading.Thread(target=work, name="atri-title", daemon=True).start()


@dataclass
class LiveAnswerHandle:
    cancel: Cancel
    saved: threading.Event


# The answer each browser session is streaming. A click during a stream reruns the page at once in a
# new script thread (fastReruns), while the old thread would stream on unseen: the new run stops it.
_STREAMING: dict[str, LiveAnswerHandle] = {}
SETTLE_TIMEOUT_S = 10.0


def _session_key() -> str:
    return st.session_state.setdefault("session_key", secrets.token_hex(8))


def settle_streaming_answer() -> None:
    """Stop an answer this session is still streaming (Stop, or any other click), and wait until it is saved."""
    handle = _STREAMING.get(_session_key())
    if handle:
        handle.cancel.cancel()
        handle.saved.wait(SETTLE_TIMEOUT_S)


def answer_pending(setup: ChatSetup, lang: str) -> None:
    """Stream the answer to the last question, saving it as it grows (whole, partial or failed)."""
    pending = st.session_state.get("pending")
    if not pending or pending.get("conversation") != conversation_id():
        st.session_state.pending = None
        return
    st.session_state.pending = None
    store, owner, cid = get_store(), current_owner(), pending["conversation"]
    history = store.messages(owner, cid)
    saver = ProgressSaver(store, owner, cid, setup.options, pending.get("position"), price_for(setup.model.id))
    if setup.connection is None:
        failed = Turn(model=setup.options.model, request={}, notes=[], error=ChatError("no_connection"))
        failed.ended_at = failed.started
        saver.finish(failed)
        st.rerun()
    turn: Turn | None = None
    with st.chat_message("assistant"):
        status = st.empty()
        connection, model = setup.connection, setup.model
        context = prepare_context(store.context_source(owner, cid), history, setup.context,
                                  setup.options.system_prompt, input_budget(model), setup.count,
                                  lambda thread, due, previous: write_summary(connection, model, thread, due, previous),
                                  on_summarising=lambda: status.caption(t(lang, "summarising")))
        status.empty()
        plan = build_request(context.sent, replace(setup.options, system_prompt=context.system_prompt),
                             setup.model, setup.connection.provider)
        saver.sent = context.sent
        plan.notes = context.notes + plan.notes
        live = LiveAnswer(lang)
        st.button(t(lang, "stop"), key="stop_answer", icon=":material/stop_circle:")  # a click reruns the page
        handle = LiveAnswerHandle(Cancel(), threading.Event())
        _STREAMING[_session_key()] = handle
        try:
            for turn in run_turn(setup.connection, plan, count=setup.count,
                                 context=context.explain(), cancel=handle.cancel):
                saver.update(turn)
                live.draw(turn)
        except BaseException:
            # Streamlit stops this run at its next element call: keep what arrived.
            if turn is not None:
                turn.error = turn.error or ChatError("stopped")
                turn.usage = turn.usage or estimate_usage(turn, setup.count)
                saver.finish(turn)
            raise
        finally:
            handle.saved.set()
            if _STREAMING.get(_session_key()) is handle:
                del _STREAMING[_session_key()]
    answer = saver.finish(turn)
    if not saver.saved.is_set():
        st.session_state.unsaved_answer = saver  # drawn from memory until the background write lands
    if st.session_state.pop("needs_title", None) == cid and not turn.error and history:
        _title_in_background(setup, store, owner, cid, history[-1], answer)
    st.rerun()

