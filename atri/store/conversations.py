"""Conversations and their messages: the thread, variants, one writer per place, answers being written, summaries and recall memory."""
from __future__ import annotations

import copy
import threading
from collections import OrderedDict, defaultdict
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..context import Memory, Summary
from ..messages import Message
from ..pricing import Price
from .engine import Database
from .rows import (
    STREAMING,
    BatchRunRow,
    ConversationRow,
    DocumentRow,
    MemoryRow,
    MessageRow,
    ShareRow,
    Stamp,
    aware,
    clip_title,
    mark_changed,
    new_id,
    now,
    row_values,
    stale,
    stamp_of,
    storable,
    to_message,
    touched_lately,
)

APPEND_TRIES = 5  # a message added at the end, when other writers keep taking the next place first
SNAPSHOTS_KEPT = 256  # conversations kept read in memory, most recently used
_HEAD_COLUMNS = (MessageRow.id, MessageRow.parent_id, MessageRow.position, MessageRow.role, MessageRow.active,
                 MessageRow.written_at, MessageRow.error_kind)
_PLACE_COLUMNS = (MessageRow.id, MessageRow.parent_id, MessageRow.position, MessageRow.role, MessageRow.active)


@dataclass(frozen=True)
class ConversationInfo:
    id: str
    title: str
    updated_at: datetime
    settings: dict[str, Any]
    summary: Summary | None = None
    pinned: bool = False

    @classmethod
    def of(cls, row: ConversationRow) -> ConversationInfo:
        summary = Summary(row.summary_text, row.summary_through or 0) if row.summary_text is not None else None
        return cls(row.id, row.title, aware(row.updated_at), dict(row.settings or {}), summary, bool(row.pinned))


@dataclass(frozen=True)
class StoredMessage:
    id: int
    position: int
    message: Message
    variant: int  # 1-based index among the rows at this position and role
    variants: int


@dataclass(frozen=True)
class Snapshot:
    info: ConversationInfo | None  # None: no such conversation for this owner (or none open)
    thread: list[StoredMessage]  # the active messages in order
    by_id: dict[int, Message]  # every message, variants included (what stored requests refer to)

    @property
    def cid(self) -> str | None:
        return self.info.id if self.info else None

    @property
    def messages(self) -> list[Message]:
        return [item.message for item in self.thread]

    @property
    def answers(self) -> list[Message]:
        """Every answer ever given, regenerated ones included (they were paid for)."""
        return [m for m in self.by_id.values() if m.role == "assistant"]


EMPTY = Snapshot(None, [], {})


class PlaceTaken(Exception):
    """Another writer (another replica, another tab) took this place in the conversation first: for an
    answer, someone is already answering that question."""


@dataclass
class _Kept:
    """A conversation as last read: its version, the snapshot, and each row's message with its stamp."""
    version: int
    snapshot: Snapshot
    messages: dict[int, tuple[Stamp, Message]]
    streaming: bool


class Place(NamedTuple):
    """A shown message's place: what choosing where a new one goes needs."""
    id: int
    position: int
    role: str


def active_path(heads: list[Any]) -> list[Any]:
    """The messages shown, in order: the active first message, then each one's active child."""
    root, children = None, {}
    for head in heads:
        if head.active and head.parent_id is None:
            root = root or head
        elif head.active:
            children.setdefault(head.parent_id, head)
    path = []
    while root is not None and len(path) <= len(heads):
        path.append(root)
        root = children.get(root.id)
    return path


def _siblings(heads: list[Any]) -> dict[tuple[int | None, str], list[int]]:
    """The variants of each place: the messages of one role under one parent, oldest first."""
    siblings: dict[tuple[int | None, str], list[int]] = defaultdict(list)
    for head in sorted(heads, key=lambda head: head.id):
        siblings[(head.parent_id, head.role)].append(head.id)
    return siblings


def _snapshot_of(info: ConversationInfo, heads: list[Any], by_id: dict[int, Message]) -> Snapshot:
    siblings = _siblings(heads)
    thread = []
    for head in active_path(heads):
        variants = siblings[(head.parent_id, head.role)]
        thread.append(StoredMessage(head.id, head.position, by_id[head.id], variants.index(head.id) + 1, len(variants)))
    return Snapshot(info, thread, by_id)


class Conversations(Database):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._snapshots: OrderedDict[tuple[str, str], _Kept] = OrderedDict()
        self._snapshots_lock = threading.Lock()
        # A SQLite file has one app process; its writers of new places take turns here (PostgreSQL's take
        # turns on the conversation's row lock). The unique index holds either way.
        self._places_lock: AbstractContextManager[Any] = threading.Lock() if self.engine.dialect.name == "sqlite" else nullcontext()
    def create_conversation(self, owner: str, title: str = "", settings: dict[str, Any] | None = None) -> str:
        conversation_id = new_id()
        stamp = now()
        with self._session() as session:
            session.add(ConversationRow(id=conversation_id, owner=owner, title=clip_title(title),
                                        settings=storable(settings or {}), created_at=stamp, updated_at=stamp))
        return conversation_id

    def conversation(self, owner: str, conversation_id: str) -> ConversationInfo | None:
        with self._session() as session:
            row = self._owned(session, owner, conversation_id)
            return ConversationInfo.of(row) if row else None

    def list_conversations(self, owner: str, query: str = "", limit: int = 200, offset: int = 0) -> list[ConversationInfo]:
        """Pinned first, then newest first, `limit` of them from `offset` on (a list that loads more as it
        scrolls); a query matches the title or any message text (case-insensitive)."""
        statement = select(ConversationRow).where(ConversationRow.owner == owner, ConversationRow.deleted_at.is_(None))
        if query.strip():
            pattern = f"%{query.strip().lower()}%"
            in_messages = select(MessageRow.conversation_id).where(func.lower(MessageRow.content).like(pattern))
            statement = statement.where(or_(func.lower(ConversationRow.title).like(pattern),
                                            ConversationRow.id.in_(in_messages)))
        statement = (statement.order_by(ConversationRow.pinned.desc(), ConversationRow.updated_at.desc(),
                                        ConversationRow.id).limit(limit).offset(offset))
        with self._session() as session:
            return [ConversationInfo.of(row) for row in session.scalars(statement)]

    def answering(self, owner: str) -> set[str]:
        """The owner's conversations with an answer being written, by any replica (touched lately)."""
        statement = (select(MessageRow.conversation_id).distinct()
                     .join(ConversationRow, ConversationRow.id == MessageRow.conversation_id)
                     .where(ConversationRow.owner == owner, MessageRow.error_kind == STREAMING,
                            touched_lately(MessageRow)))
        with self._session() as session:
            return set(session.scalars(statement))

    def rename(self, owner: str, conversation_id: str, title: str) -> bool:
        with self._session() as session:
            row = self._owned(session, owner, conversation_id)
            if row:
                row.title = clip_title(title)
                mark_changed(row)
            return row is not None

    def pin(self, owner: str, conversation_id: str, pinned: bool) -> bool:
        with self._session() as session:
            row = self._owned(session, owner, conversation_id)
            if row is None:
                return False
            row.pinned = pinned
            mark_changed(row)
            return True

    def update_settings(self, owner: str, conversation_id: str, settings: dict[str, Any]) -> None:
        with self._session() as session:
            row = self._owned(session, owner, conversation_id)
            if row:
                row.settings = {**(row.settings or {}), **storable(settings)}
                mark_changed(row)

    def delete(self, owner: str, conversation_id: str) -> bool:
        """Gone for its owner, its text erased for good; what its answers used and cost stays in the
        accounts (the owner's totals, the Usage page), so tidying up changes no figure."""
        with self._session() as session:
            row = self._owned(session, owner, conversation_id)
            if row is None:
                return False
            _erase(session, [conversation_id])
            return True

    def forget_owner(self, owner: str) -> int:
        """"Delete my data": every conversation erased as `delete` does, and the owner's name taken off them
        and off their batch runs, so that only anonymous counts remain. Returns how many conversations."""
        anonymous = f"forgotten:{new_id()}"
        with self._session() as session:
            ids = list(session.scalars(select(ConversationRow.id).where(ConversationRow.owner == owner)))
            _erase(session, ids)
            session.execute(update(ConversationRow).where(ConversationRow.owner == owner).values(owner=anonymous))
            session.execute(update(BatchRunRow).where(BatchRunRow.owner == owner)
                            .values(owner=anonymous, title="", data={}))
            return len(ids)

    def snapshot(self, owner: str, conversation_id: str) -> Snapshot:
        """The conversation and all its messages, as one read-only value a page draws from.

        Kept in memory: when the conversation's version says it changed, only the rows written since
        (and any still streaming: their liveness depends on time) are read and validated again, so a
        turn in a long chat costs what a turn in a short one does."""
        key = (owner, conversation_id)
        with self._session() as session:
            row = self._owned(session, owner, conversation_id)
            if row is None:
                return EMPTY
            kept = self._snapshots.get(key)
            if kept is not None and kept.version == row.version and not kept.streaming:
                return kept.snapshot
            version, info = row.version, ConversationInfo.of(row)
            heads = session.execute(select(*_HEAD_COLUMNS).where(MessageRow.conversation_id == conversation_id)
                                    .order_by(MessageRow.position, MessageRow.id)).all()
            known = kept.messages if kept is not None else {}
            stale = [head.id for head in heads if stamp_of(head) != known.get(head.id, (None, None))[0]
                     or head.error_kind == STREAMING]
            query = select(MessageRow).where(MessageRow.conversation_id == conversation_id)
            if len(stale) < len(heads):
                query = query.where(MessageRow.id.in_(stale))
            fresh = {row.id: (stamp_of(row), to_message(row)) for row in session.scalars(query)} if stale else {}
        messages = {head.id: fresh.get(head.id) or known[head.id] for head in heads}
        snapshot = _snapshot_of(info, heads, {row_id: message for row_id, (_, message) in messages.items()})
        with self._snapshots_lock:
            self._snapshots[key] = _Kept(version, snapshot, messages, any(h.error_kind == STREAMING for h in heads))
            self._snapshots.move_to_end(key)
            while len(self._snapshots) > SNAPSHOTS_KEPT:
                self._snapshots.popitem(last=False)
        return snapshot

    def thread(self, owner: str, conversation_id: str) -> list[StoredMessage]:
        """The active messages in order, each with how many variants its position has."""
        return self.snapshot(owner, conversation_id).thread

    def messages(self, owner: str, conversation_id: str) -> list[Message]:
        return [copy.deepcopy(message) for message in self.snapshot(owner, conversation_id).messages]

    def append(self, owner: str, conversation_id: str, message: Message, position: int | None = None,
               price: Price | None = None) -> int:
        """Add a message at the end (or at `position`, as a new variant); returns its id.
        `price`: the model's, when known, so that the answer's cost is stored with it.
        Raises PlaceTaken when another writer took `position` first."""
        return self._insert(owner, conversation_id, message, position, price, claim=False).id

    def claim_answer(self, owner: str, conversation_id: str, message: Message, position: int | None = None,
                     price: Price | None = None) -> StoredMessage:
        """Write an answer's row before its request goes out, so that every replica sees the question as
        being answered and none asks again; returns its row (id and position). At the end (`position`
        None) only if the last message shown is a question; at `position` only if nothing is shown there.
        Raises PlaceTaken otherwise."""
        return self._insert(owner, conversation_id, message, position, price, claim=True)

    def _insert(self, owner: str, conversation_id: str, message: Message, position: int | None,
                price: Price | None, claim: bool) -> StoredMessage:
        for attempt in range(APPEND_TRIES):
            try:
                with self._places_lock:
                    item, version = self._insert_once(owner, conversation_id, message, position, price, claim)
                break
            except IntegrityError:  # the unique place: another writer came between the read and the write
                if position is not None or claim or attempt == APPEND_TRIES - 1:
                    raise PlaceTaken(conversation_id) from None
        if position is None:
            self._keep_appended(owner, conversation_id, version, item)
        return item

    def _insert_once(self, owner: str, conversation_id: str, message: Message, position: int | None,
                     price: Price | None, claim: bool) -> tuple[StoredMessage, int]:
        with self._session() as session:
            conversation = self._owned(session, owner, conversation_id, lock=True)
            if conversation is None:
                raise KeyError(conversation_id)
            version = conversation.version
            path = self._kept_path(owner, conversation_id, version) or active_path(
                session.execute(select(*_PLACE_COLUMNS).where(MessageRow.conversation_id == conversation_id)).all())
            before = path if position is None else [place for place in path if place.position < position]
            parent = before[-1] if before else None
            if claim and position is None and (parent is None or parent.role != "user"):
                raise PlaceTaken(conversation_id)
            if position is None:
                position = parent.position + 1 if parent else 0
            parent_id = parent.id if parent else None
            siblings = session.scalar(select(func.count()).select_from(MessageRow).where(
                MessageRow.conversation_id == conversation_id, MessageRow.role == message.role,
                MessageRow.parent_id.is_(None) if parent_id is None else MessageRow.parent_id == parent_id))
            row = MessageRow(conversation_id=conversation_id, parent_id=parent_id, position=position, active=True,
                             created_at=now(), **row_values(message, price))
            session.add(row)
            conversation.updated_at = now()
            mark_changed(conversation)
            session.flush()
            variants = siblings + 1
            return StoredMessage(row.id, position, message, variants, variants), version

    def _kept_path(self, owner: str, conversation_id: str, version: int) -> list[Place]:
        """The messages shown, from the kept snapshot when it is the conversation at `version` (the usual
        case for a chat open in this process): an append in a long chat then reads no row heads."""
        with self._snapshots_lock:
            kept = self._snapshots.get((owner, conversation_id))
            if kept is None or kept.version != version:
                return []
            return [Place(item.id, item.position, item.message.role) for item in kept.snapshot.thread]

    def _keep_appended(self, owner: str, conversation_id: str, version: int, item: StoredMessage) -> None:
        """A message this process added at the end goes into the kept snapshot too, when that snapshot was
        the conversation at the version the write started from: the next read (the answer's worker, the
        page) then costs one query instead of reading every row's head again. Otherwise (another writer
        came first, a streaming answer) the next read rebuilds it as usual."""
        key = (owner, conversation_id)
        with self._snapshots_lock:
            kept = self._snapshots.get(key)
            if kept is None or kept.version != version or kept.streaming:
                return
            message = copy.deepcopy(item.message)  # the caller's object may change after this
            message.id = item.id
            old = kept.snapshot
            snapshot = Snapshot(old.info, [*old.thread, replace(item, message=message)], {**old.by_id, item.id: message})
            streaming = message.facts is not None and message.facts.error_kind == STREAMING
            # No stamp: the row is read again if the conversation changes before anything else reads it.
            self._snapshots[key] = _Kept(version + 1, snapshot, {**kept.messages, item.id: ((None, None), message)},
                                         streaming)

    def save(self, owner: str, message: Message, price: Price | None = None) -> None:
        """Write a message's current content and facts (used while it streams and when it ends)."""
        with self._session() as session:
            row = session.get(MessageRow, message.id)
            conversation = self._owned(session, owner, row.conversation_id) if row else None
            if conversation is None:
                raise KeyError(message.id)
            if row.parent_id == -row.id:  # deleted (atri.store.deleting) while it was being written: it stays so
                return
            for name, value in row_values(message, price).items():
                setattr(row, name, value)
            mark_changed(conversation)

    def still_writing(self, message_ids: list[int]) -> None:
        """The answers with these ids are still being written by this process."""
        with self._session() as session:
            session.execute(update(MessageRow).where(MessageRow.id.in_(message_ids), MessageRow.error_kind == STREAMING)
                            .values(written_at=now()))

    def interrupt_stale_answers(self, at_start: bool = False) -> int:
        """Mark answers left "being written" by a process that died as interrupted; returns how many. Any
        replica calls it now and then: what its writer stopped touching for STALE_AFTER was left behind.
        At start-up on SQLite (one app process per file), every one of them: nothing can be writing yet."""
        left_behind = MessageRow.error_kind == STREAMING
        if not (at_start and self.engine.dialect.name == "sqlite"):
            left_behind &= stale(MessageRow)
        with self._session() as session:
            return session.execute(update(MessageRow).where(left_behind).values(error_kind="interrupted")).rowcount

    def save_summary(self, owner: str, conversation_id: str, summary: Summary) -> None:
        with self._session() as session:
            row = self._owned(session, owner, conversation_id)
            if row:
                row.summary_text, row.summary_through = storable(summary.text), summary.through
                mark_changed(row)

    def retire_from(self, owner: str, conversation_id: str, position: int) -> None:
        """Hide the shown message at `position` and what follows it, before a new variant takes its place
        (an edited question, a regenerated answer). Nothing is lost: they stay a branch, ‹1/2›, with their
        own continuation."""
        with self._session() as session:
            conversation = self._owned(session, owner, conversation_id)
            if conversation is None:
                raise KeyError(conversation_id)
            heads = session.execute(select(*_PLACE_COLUMNS).where(MessageRow.conversation_id == conversation_id)).all()
            shown = [head.id for head in active_path(heads) if head.position >= position][:1]
            session.execute(update(MessageRow).where(MessageRow.id.in_(shown)).values(active=False))
            mark_changed(conversation)

    def show_variant(self, owner: str, message_id: int, step: int) -> None:
        """Show the message's previous (-1) or next (+1) sibling instead, with that branch's continuation."""
        with self._session() as session:
            row = session.get(MessageRow, message_id)
            conversation = self._owned(session, owner, row.conversation_id) if row else None
            if conversation is None:
                return
            mark_changed(conversation)
            siblings = session.scalars(select(MessageRow).where(
                MessageRow.conversation_id == row.conversation_id, MessageRow.parent_id.is_(row.parent_id)
                if row.parent_id is None else MessageRow.parent_id == row.parent_id,
                MessageRow.role == row.role).order_by(MessageRow.id)).all()
            index = [s.id for s in siblings].index(row.id) + step
            if 0 <= index < len(siblings):
                row.active = False
                session.flush()  # first: one active child per parent, at every moment
                siblings[index].active = True

    def add_memories(self, owner: str, conversation_id: str, embedder: str, memories: list[Memory]) -> None:
        with self._session() as session:
            if self._owned(session, owner, conversation_id) is None:
                raise KeyError(conversation_id)
            for memory in memories:
                session.add(MemoryRow(conversation_id=conversation_id, turn_key=memory.key, embedder=embedder,
                                      text=storable(memory.text),
                                      vector=np.asarray(memory.vector, dtype="<f4").tobytes()))

    def memories(self, owner: str, conversation_id: str, embedder: str) -> list[Memory]:
        with self._session() as session:
            if self._owned(session, owner, conversation_id) is None:
                return []
            rows = session.scalars(select(MemoryRow).where(MemoryRow.conversation_id == conversation_id,
                                                           MemoryRow.embedder == embedder)).all()
            return [Memory(r.turn_key, r.text, np.frombuffer(r.vector, dtype="<f4")) for r in rows]



def _erase(session: Session, conversation_ids: list[str]) -> None:
    """The conversations' text, documents, memories and shares removed; their rows stay, marked deleted, with
    each answer's model, tokens and cost."""
    if not conversation_ids:
        return
    in_them = MessageRow.conversation_id.in_(conversation_ids)
    session.execute(update(MessageRow).where(in_them).values(content="", data={}, active=False))
    session.execute(delete(MemoryRow).where(MemoryRow.conversation_id.in_(conversation_ids)))
    session.execute(delete(DocumentRow).where(DocumentRow.conversation_id.in_(conversation_ids)))
    session.execute(delete(ShareRow).where(ShareRow.conversation_id.in_(conversation_ids)))
    session.execute(update(ConversationRow).where(ConversationRow.id.in_(conversation_ids))
                    .values(title="", settings={}, summary_text=None, summary_through=None,
                            deleted_at=func.coalesce(ConversationRow.deleted_at, now()),
                            version=ConversationRow.version + 1))
