"""The turn below the history: the question just asked, the answer being written (drawn live from the
answer's worker), Stop, what the last question's callback has to tell, and the chat box. Only this part
runs for a turn (a fragment); the whole page runs again when the answer is saved."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import streamlit as st

from atri.answers import LiveAnswer
from atri.conversation import CannotSee, TooLong, busy, settled
from atri.documents import DOCUMENT_TYPES
from atri.i18n import t
from atri.quotas import Standing
from atri.safe_markdown import plain_text
from atri.store import Snapshot, title_from
from atri.ui.asking import conversation_id
from atri.ui.browser_script import STOP_KEY
from atri.ui.chat import attach, attached, sidebar_key, turn_box_key
from atri.ui.composer import cancel_queued, on_submit, send_with_seeing_model, send_without_images
from atri.ui.config import current_language, get_answerer, get_store
from atri.ui.documents_panel import conversation_documents
from atri.ui.error_text import quota_message
from atri.ui.identity import current_owner
from atri.ui.redraw import REDRAW_INTERVAL_S
from atri.ui.render import LiveAnswer as LiveDrawing
from atri.ui.render import show_message
from atri.ui.session import CHAT_INPUT, PROVIDER, session
from atri.ui.steps import show_pending_call
from atri.ui.streamlit_workarounds import at_page_top_level, click_waiting, rerun_page
from atri.ui.voice_input import can_record
from atri.video import VIDEO_TYPES

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator

IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "gif", "bmp"]
LIVE_WAIT_S = 0.25  # longest wait between redraws of a live answer (it redraws as soon as a piece arrives)
ELSEWHERE_REFRESH_S = 1.0
APPROVAL_CHECK_S = 1.0  # while a tool call waits for the visitor: how often the page looks whether it still does
# The embedded model and the browser share this machine's cores, and llama.cpp's threads wait for each other
# many times per token, so each change the browser draws stalls the model too. Answers drawn at each interval
# in alternation on 2 cores, median of 5 (tokens/s seen in the browser vs llama.cpp alone): 0.2 s 84 % and
# 83 % in two runs, 0.3 s 86 %, 0.4 s 89 %.
LOCAL_REDRAW_S = 0.4
QUOTA_TICK_S = 1.0  # a refusal's "in 42 s" counts down at this pace...
QUOTA_COUNTDOWN_S = 120  # ...when the reset is this close (render._when says a clock time beyond)


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
        chat_input(lang)  # first: it takes questions (queued) while the answer below is drawn
        _turn_body(lang, offline)


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
    key = turn_box_key(session.turn_box_at)
    if session.turn_box_at == 0:
        box = st.container(key=key)
        st.empty()
        return box
    st.empty()
    return st.container(key=key)


def _turn_body(lang: str, offline: bool) -> None:
    view, live = attach()
    if session.pending is not None or _sidebar_behind(view, live):  # before anything is drawn (or told once)
        st.rerun(scope="app")
    if not view.thread and live is None:
        st.caption(t(lang, "empty_chat"))
        if offline:
            st.caption(t(lang, "offline_hint"))
    cid, drawn = session.history_drawn
    shown = settled(view.thread, live)
    added = shown[drawn:] if cid in (view.cid, None) else []  # None: drawn as the empty chat, made since
    documents = conversation_documents(view) if added else []
    for item in added:
        show_message(lang, item.message, view.by_id,
                     attached=attached(lang, item, documents))
    session.turn_shown = (view.cid, len(shown) - len(added), len(added) + (live is not None))
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
    return live is None and not busy(view) and drawn != sidebar_key(view)


def _stop(cid: str) -> None:
    get_answerer().stop(current_owner(), cid)


def follow_answer(lang: str, view: Snapshot, live: LiveAnswer | None) -> None:
    """Draw the answer this process is writing for the open conversation (atri.ui.chat.attach), live, until it
    ends; an answer being written by another replica is shown as saved and looked at again every second."""
    if live is not None:
        region = st.container()
        if not live.done.is_set():  # outside the answer's region: a click reruns this part, and that run re-attaches
            st.button(t(lang, "stop"), key=STOP_KEY, icon=":material/stop_circle:", on_click=_stop, args=(view.cid,))
            _queued_note(lang, view.cid)
        with region:
            _live_answer(lang, live)
    elif busy(view):
        _queued_note(lang, view.cid)
        _written_elsewhere()


def _live_answer(lang: str, live: LiveAnswer) -> None:
    """Redraw the answer as it grows, each piece as soon as the redraw interval allows. Any click ends this
    run, and the click's run attaches again: only Stop stops the answer."""
    with st.chat_message("assistant"):
        status = st.empty()
        drawing = LiveDrawing(lang, LOCAL_REDRAW_S if live.local else REDRAW_INTERVAL_S)
        drawn_version, drawn, shown_status = -1, True, None
        while not live.done.is_set():
            if click_waiting():
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
                pending = live.pending
                if pending is not None:  # nothing changes until the visitor decides: the run ends here
                    if live.turn is not None:
                        drawing.draw(live.turn, final=True)
                    show_pending_call(lang, pending, live.approval_timeout_s,
                                      lambda call_id, approve, cid=live.cid: _decide(cid, call_id, approve))
                    _while_waiting(live.cid, pending.id)
                    return
            live.wait_for_change(drawn_version, LIVE_WAIT_S if drawn else drawing.next_draw_in())
        if live.turn is not None:
            drawing.draw(live.turn, final=True)
        if live.unsaved:
            st.warning(t(lang, "error_storage"), icon=":material/database:")
            if session.sidebar_drawn_for is not None and session.sidebar_drawn_for[0] == live.cid:
                return  # drawn from here, with this warning, until the database takes it
    rerun_page()  # saved: drawn with the history from now on; the sidebar gets the new chat or title (unsaved: too)


def _decide(cid: str, call_id: str, approve: bool) -> None:
    get_answerer().decide(current_owner(), cid, call_id, approve)


@st.fragment(run_every=APPROVAL_CHECK_S)
def _while_waiting(cid: str, call_id: str) -> None:
    """While a call waits for this visitor, the turn's run has ended: once it no longer waits (decided in another
    tab, its time ran out, stopped), the page runs again and follows the answer."""
    live = get_answerer().live(current_owner(), cid)
    if live is None or live.pending is None or live.pending.id != call_id:
        st.rerun()


def _phase_note(lang: str, live: LiveAnswer) -> str | None:
    """What the answer is doing before its text comes, if it is not just waiting for it."""
    if live.phase == "summarising":
        return t(lang, "summarising")
    if live.phase in ("reading", "indexing"):
        name, done, total = live.progress
        return t(lang, f"{live.phase}_document", name=plain_text(name), done=done, total=total)
    return None


@st.fragment(run_every=ELSEWHERE_REFRESH_S)
def _written_elsewhere() -> None:
    st.caption(f":material/sync: {t(current_language(), 'answer_elsewhere')}")
    if not busy(get_store().snapshot(current_owner(), conversation_id() or "")):
        st.rerun()


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
        elif isinstance(reason, TooLong):
            st.error(t(lang, "question_too_long", tokens=reason.tokens, window=reason.window, model=reason.model_id),
                     icon=":material/block:")
        elif isinstance(reason, CannotSee):
            _cannot_see(lang, reason)
            return  # the question is back in the chat box as it was
        else:
            st.error(t(lang, "question_not_saved"), icon=":material/database:")
        st.code(unsent, language="text", wrap_lines=True)


def _cannot_see(lang: str, refusal: CannotSee) -> None:
    """Images for a model that cannot see them, said before anything goes, with the provider's model that
    can in one click (the question then goes as it was, files included)."""
    seeing = refusal.seeing_model_id
    message = ("cannot_watch" if refusal.video else "cannot_see") + ("" if seeing else "_no_model")
    st.warning(t(lang, message, model=refusal.model_id, seeing=seeing), icon=":material/visibility_off:")
    with st.container(horizontal=True, gap="small"):
        if seeing:
            st.button(t(lang, "send_to_seeing_model", seeing=seeing), key="send_to_seeing_model",
                      icon=":material/visibility:", type="primary", on_click=send_with_seeing_model,
                      args=(st.session_state.get(PROVIDER), seeing))
        st.button(t(lang, "send_text_only"), key="send_text_only", icon=":material/text_fields:",
                  on_click=send_without_images)


def _queued_note(lang: str, cid: str | None) -> None:
    """The question typed while this answer is written: it goes when the answer ends, unless taken back."""
    queued = session.queued_question
    if queued is None or queued.conversation != cid:
        return
    with st.container(horizontal=True, vertical_alignment="center", gap="small", key="queued_question"):
        st.caption(f":material/schedule_send: {t(lang, 'queued_question', text=plain_text(title_from(queued.message.content)))}")
        st.button(t(lang, "queued_cancel"), key="cancel_queued", type="tertiary", on_click=cancel_queued)


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


def chat_input(lang: str) -> None:
    """Pinned below the page, and submitted to the turn's fragment (the widget belongs to the fragment that
    draws it). Drawn as if from the page's top level: only a chat box from there keeps the page scrolled to
    the newest message (Streamlit's `is_auto_positioned_at_bottom`; `st.bottom.chat_input` is not)."""
    with at_page_top_level():
        st.chat_input(t(lang, "chat_placeholder"), key=CHAT_INPUT, on_submit=on_submit,
                      accept_file="multiple", file_type=[*IMAGE_TYPES, *DOCUMENT_TYPES, *VIDEO_TYPES], submit_mode="submit",
                      accept_audio=can_record(session.answer_setup))
