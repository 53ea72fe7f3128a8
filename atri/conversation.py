"""What can be done with a conversation, decided without a page: whether a message can still be acted on,
whether an answer is being written, whether a question may go out at all, and saving a question (a new
chat when there is none). The chat page (atri/ui/chat.py, atri/ui/composer.py) draws buttons and calls
these; a future API would call the same."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .answers import LiveAnswer
from .documents import Upload
from .messages import Message
from .quotas import Standing
from .store import STREAMING, Snapshot, Store, StoredMessage, title_from


@dataclass(frozen=True)
class SendGuard:
    """What a question is checked against before it is saved, as the last page run saw it (the chat box's
    callback runs before the run that follows it)."""
    model_id: str
    model_window: int  # tokens
    count: Callable[[str], int]
    quota_refusal: Standing | None = None  # a limit already used up (until its resets_at)
    sees_images: bool = True
    seeing_model_id: str | None = None  # the provider's model to offer when this one cannot see
    reads_video: bool = True
    video_model_id: str | None = None  # the provider's model to offer when this one cannot read a clip


@dataclass(frozen=True)
class TooLong:
    """A question longer than the model's whole window: a million characters would otherwise go to the
    provider as they are."""
    tokens: int
    window: int
    model_id: str


@dataclass(frozen=True)
class CannotSee:
    """Images for a model that cannot see them: said before the question goes, with the provider's model
    that can (None when it has none)."""
    model_id: str
    seeing_model_id: str | None
    video: bool = False  # what it cannot see is a video


Refusal = Standing | TooLong | CannotSee


def send_refusal(guard: SendGuard | None, text: str, with_images: bool = False, at: float | None = None,
                 with_video: bool = False) -> Refusal | None:
    """Why a question cannot go out as it is, before it is saved: a limit used up (until it resets), a
    question over the model's window, or images for a model that cannot see them."""
    if guard is None:
        return None
    if guard.quota_refusal and guard.quota_refusal.resets_at > (time.time() if at is None else at):
        return guard.quota_refusal
    tokens = guard.count(text)
    if tokens > guard.model_window:
        return TooLong(tokens, guard.model_window, guard.model_id)
    if with_video and not guard.reads_video:
        return CannotSee(guard.model_id, guard.video_model_id, video=True)
    if with_images and not guard.sees_images:
        return CannotSee(guard.model_id, guard.seeing_model_id)
    return None


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")


VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".m4v")


def image_links(text: str, limit: int) -> list[str]:
    """Links to pictures written in a question (`https://…/cat.png`), in order, each once, at most `limit`:
    they go with it as images, as if attached."""
    return media_links(text, IMAGE_SUFFIXES, limit)


def video_link(text: str) -> str | None:
    """The first link to a clip written in a question (`https://…/clip.mp4`): it goes as a video the provider
    fetches itself."""
    return next(iter(media_links(text, VIDEO_SUFFIXES, 1)), None)


def media_links(text: str, suffixes: tuple[str, ...], limit: int) -> list[str]:
    """Links whose path ends with one of `suffixes`, in order, each once, at most `limit`. One pass over the
    words (a visitor's text can be long)."""
    found: list[str] = []
    for word in text.split():
        start = word.lower().find("http")  # Chinese runs words and links together: 看https://…
        link = word[max(start, 0):].rstrip(".,;:!?)]>\"'`，。；：！？）】》」")
        if start < 0 or not link.lower().startswith(("http://", "https://")) or link in found:
            continue
        if urlsplit(link).path.lower().endswith(suffixes):
            found.append(link)
            if len(found) == limit:
                break
    return found


def being_written(item: StoredMessage) -> bool:
    """An answer saved as it grows ("streaming"), by this process or another replica."""
    return bool(item.message.facts and item.message.facts.error_kind == STREAMING)


def busy(view: Snapshot) -> bool:
    """The conversation's last answer is still being written (here or by another server)."""
    return bool(view.thread and being_written(view.thread[-1]))


def settled(thread: list[StoredMessage], live: LiveAnswer | None) -> list[StoredMessage]:
    """The thread without the answer `live` is writing (its stored row, if read already, is drawn from
    memory)."""
    if live is not None and thread and (thread[-1].id == live.message_id or being_written(thread[-1])):
        return thread[:-1]
    return thread


def can_act_on(view: Snapshot, live: LiveAnswer | None, message_id: int) -> bool:
    """A button drawn under this message may act: the message is still in the thread and nothing is being
    answered. A page draws its history once per run, so its buttons can outlive their place."""
    return (any(shown.id == message_id for shown in view.thread) and not busy(view)
            and not (live is not None and live.active))


def untitled(message: Message, documents: tuple[Upload, ...]) -> str:
    """The title of a chat opened with no words: its document's name, or a picture."""
    if documents and not message.images and not message.video:
        return f"📄 {title_from(documents[0].name)}"
    return "🎞" if message.video and not message.images else "🖼"


def save_question(store: Store, owner: str, cid: str | None, message: Message, *, position: int | None = None,
                  documents: tuple[Upload, ...] = (), settings: dict[str, Any] | None = None) -> tuple[str, bool]:
    """Save the question before anything goes out: into `cid`, or a new chat titled after it when `cid` is
    not one of the owner's. Returns the conversation's id and whether it was made now."""
    made = cid is None or store.conversation(owner, cid) is None
    if made:
        cid = store.create_conversation(owner, title_from(message.content) or untitled(message, documents),
                                        settings=settings or {})
    assert cid is not None
    store.append(owner, cid, message, position=position)
    return cid, made
