"""The chat box's question: its files (images, documents, a clip) and picture links checked and attached,
then sent now, queued while an answer is being written, or held back with the reason (a limit, a model that
cannot see) and put back in the box."""
from __future__ import annotations

from dataclasses import replace

import streamlit as st

from atri.conversation import CannotSee, image_links, send_refusal, video_link
from atri.documents import DocumentProblem, Upload, check_document_isolated, document_kind, scanned_pages_isolated
from atri.i18n import t
from atri.images import ImageBatch, file_to_data_url
from atri.messages import MAX_IMAGES, Message
from atri.store import StorageError
from atri.ui.asking import answer_being_written, conversation_id, send_question, switch_model
from atri.ui.config import current_language
from atri.ui.session import CHAT_INPUT, WEB_SEARCH_KEY, HeldQuestion, session
from atri.ui.voice_input import send_voice_at_once, transcribe_into_box
from atri.video import VideoProblem, frames_isolated, video_kind


def on_submit() -> None:
    """The chat box's callback: the question with its files (images, documents, a clip) and the picture and clip
    links written in it, or a recording's words (put in the box, or sent at once). Sent now, queued while an
    answer is being written (sent when it ends), or refused with the reason and put back."""
    value = st.session_state.get(CHAT_INPUT)
    if value is None:
        return
    text = value if isinstance(value, str) else (value.text or "")
    recording = None if isinstance(value, str) else value.get("audio")
    if recording is not None:
        text = transcribe_into_box(current_language(), text, recording.getvalue())
        if not text or not send_voice_at_once():
            if value.files:  # the box holds words only: files go again with the question
                session.attachment_problems = [*session.attachment_problems, ("recording_files_again", {})]
            return
        st.session_state[CHAT_INPUT] = ""
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
    linked = None if video else video_link(text)
    video = video or ([linked] if linked else [])
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
    if answer_being_written(question.conversation):
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


def _send_held(question: HeldQuestion) -> None:
    """Send a question kept back until now (shown to copy, and put back, when the database refuses it)."""
    try:
        send_question(question.message, documents=question.documents)
    except StorageError:
        session.unsent_question = question.message.content
        st.session_state[CHAT_INPUT] = question.message.content


def send_queued() -> None:
    """The question typed while the last answer was written, once that answer has ended (a page run)."""
    queued = session.queued_question
    if queued is None or queued.conversation != conversation_id():
        return
    if not answer_being_written(queued.conversation):
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
    switch_model(provider_id, model_id)
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


def composer_switches(lang: str) -> None:
    """The switches a chat app's users look for beside the chat box (web search), pinned with it at the bottom.
    Drawn by the page, not the turn's fragment: a fragment cannot draw in the page's bottom container."""
    with st.bottom, st.container(horizontal=True, key="composer_switches", gap="small"):
        st.toggle(t(lang, "tool_web_search"), key=WEB_SEARCH_KEY, persist_state="session")
