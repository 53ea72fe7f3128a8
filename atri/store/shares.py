"""Share links: a read-only copy of a chat, or of it up to one answer, at an unguessable address. Made and
revoked by the chat's owner; whoever holds the address reads it (the app decides whether the access gate
applies) and can continue it in a chat of their own. A share names no owner."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select, update

from ..messages import InvalidData, Message
from .rows import ShareRow, aware, now, storable
from .transfer import Transfer

TOKEN_BYTES = 24  # 192 bits: guessing is hopeless, and the token is the only key


@dataclass(frozen=True)
class ShareInfo:
    token: str
    conversation_id: str
    message_id: int | None
    title: str
    created_at: datetime


@dataclass(frozen=True)
class SharedChat:
    title: str
    messages: list[Message]
    created_at: datetime


def _shareable(message: Message) -> Message:
    """What a share shows of a message: no raw request (it carries the owner's settings and system prompt)."""
    if message.facts is None:
        return replace(message, id=None)
    return replace(message, id=None, facts=replace(message.facts, request=None, context=None))


class Shares(Transfer):
    def create_share(self, owner: str, conversation_id: str, message_id: int | None = None) -> str | None:
        """A share of the chat as it is shown now (up to `message_id`, if given); its token, or None when the
        owner has no such chat or that message is not shown in it."""
        snapshot = self.snapshot(owner, conversation_id)
        ids = [item.id for item in snapshot.thread]
        if snapshot.info is None or not ids or message_id is not None and message_id not in ids:
            return None
        thread = snapshot.messages[:ids.index(message_id) + 1] if message_id is not None else snapshot.messages
        token = secrets.token_urlsafe(TOKEN_BYTES)
        with self._session() as session:
            session.add(ShareRow(token=token, owner=owner, conversation_id=conversation_id, message_id=message_id,
                                 title=snapshot.info.title, created_at=now(),
                                 data=storable({"messages": [_shareable(m).to_dict() for m in thread]})))
        return token

    def shares(self, owner: str) -> list[ShareInfo]:
        """The owner's shares that still work, newest first."""
        statement = (select(ShareRow).where(ShareRow.owner == owner, ShareRow.revoked_at.is_(None))
                     .order_by(ShareRow.created_at.desc()))
        with self._session() as session:
            return [ShareInfo(row.token, row.conversation_id, row.message_id, row.title, aware(row.created_at))
                    for row in session.scalars(statement)]

    def revoke_share(self, owner: str, token: str) -> bool:
        with self._session() as session:
            return bool(session.execute(update(ShareRow).where(ShareRow.token == token, ShareRow.owner == owner,
                                                               ShareRow.revoked_at.is_(None))
                                        .values(revoked_at=now())).rowcount)

    def shared(self, token: str) -> SharedChat | None:
        """What a share shows, for anyone holding its token; None once revoked (deleting the chat removes its
        shares)."""
        statement = select(ShareRow).where(ShareRow.token == token, ShareRow.revoked_at.is_(None))
        with self._session() as session:
            row = session.scalar(statement)
            if row is None:
                return None
            title, data, created_at = row.title, row.data, aware(row.created_at)
        try:
            messages = [Message.from_dict(item, stored=True) for item in data.get("messages", [])]
        except InvalidData:
            return None
        return SharedChat(title, messages, created_at)

    def continue_shared(self, token: str, owner: str) -> str | None:
        """A chat of `owner`'s that starts as the share and goes on from there (its answers carry no tokens or
        cost: those were someone else's); None when the share no longer works."""
        chat = self.shared(token)
        if chat is None:
            return None
        messages = [replace(m, facts=replace(m.facts, usage=None, cost=None, currency=None)) if m.facts else m
                    for m in chat.messages]
        return self._new_with(owner, messages, chat.title, {})
