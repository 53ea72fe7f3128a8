"""Deleting one message of a conversation, and what follows it (issue 29's delete in each message's toolbar)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from .conversations import Conversations
from .rows import STREAMING, ConversationRow, DocumentRow, MemoryRow, MessageRow, mark_changed, now

_TREE_COLUMNS = (MessageRow.id, MessageRow.parent_id, MessageRow.role, MessageRow.active, MessageRow.error_kind)


def _below(heads: list[Any], message_id: int) -> list[int]:
    """The message and every message under it, on every branch."""
    children: dict[int | None, list[int]] = defaultdict(list)
    for head in heads:
        children[head.parent_id].append(head.id)
    gone, todo = [], [message_id]
    while todo:
        gone.append(todo.pop())
        todo += children[gone[-1]]
    return gone


class Deleting(Conversations):
    def delete_message(self, owner: str, message_id: int) -> int:
        """Delete a message and what follows it on every branch below it; its previous variant (else its next)
        is shown in its place. Their text, data, memories and documents go, and the conversation's summary when
        it stood for them; the rows stay, detached from the tree (`parent_id` = −id: no message's child, no
        one's variant, never shown), with each answer's model, tokens and cost for the accounts. Nothing goes
        while an answer below it is being written. Returns how many messages went."""
        with self._places_lock, self._session() as session:
            row = session.get(MessageRow, message_id)
            attached = row is not None and row.parent_id != -row.id
            conversation = self._owned(session, owner, row.conversation_id, lock=True) if attached else None
            if conversation is None:
                return 0
            heads = session.execute(select(*_TREE_COLUMNS).where(MessageRow.conversation_id == row.conversation_id)).all()
            gone = _below(heads, row.id)
            if any(head.error_kind == STREAMING for head in heads if head.id in gone):
                return 0
            variants = [h for h in heads if h.parent_id == row.parent_id and h.role == row.role and h.id != row.id]
            was_shown, position = row.active, row.position  # (the update below changes `row` too)
            session.execute(update(MessageRow).where(MessageRow.id.in_(gone))
                            .values(content="", data={}, active=False, parent_id=-MessageRow.id, written_at=now()))
            if was_shown and variants:
                earlier = [head for head in variants if head.id < row.id]
                session.execute(update(MessageRow).where(MessageRow.id == (earlier[-1] if earlier else variants[0]).id)
                                .values(active=True))
            _erase_what_stood_for(session, conversation, gone, position)
            mark_changed(conversation)
            return len(gone)


def _erase_what_stood_for(session: Session, conversation: ConversationRow, gone: list[int], position: int) -> None:
    """The memories of the deleted turns, the documents their questions brought, and the rolling summary when it
    covered a deleted message (it also counts messages: kept, it would stand for the wrong ones)."""
    erased = {str(message) for message in gone}
    memories = session.execute(select(MemoryRow.id, MemoryRow.turn_key)
                               .where(MemoryRow.conversation_id == conversation.id)).all()
    session.execute(delete(MemoryRow).where(
        MemoryRow.id.in_([m.id for m in memories if erased & set(m.turn_key.split(":"))])))
    session.execute(delete(DocumentRow).where(DocumentRow.conversation_id == conversation.id,
                                              DocumentRow.message_id.in_(gone)))
    if conversation.summary_through is not None and position < conversation.summary_through:
        conversation.summary_text, conversation.summary_through = None, None
