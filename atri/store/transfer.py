"""A conversation as a file: export, and import of what an export holds (validated, bounded)."""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import aliased

from ..images import thumbnail_of
from ..messages import InvalidData, Message
from ..request import expand_request
from .conversations import Conversations
from .rows import ConversationRow, MessageRow, clip_title, conversation_settings, new_id, now, row_values, title_from

EXPORT_FORMAT = "atri.conversation"
EXPORT_VERSION = 1
MAX_IMPORT_MESSAGES = 20_000


class BadImport(ValueError):
    """An import file that is not an Atri conversation; the message says what is wrong."""


def parse_export(raw: str | bytes) -> tuple[list[Message], str, dict[str, Any]]:
    """The messages, title and settings of an export; raises BadImport naming the field and the reason."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadImport(f"not JSON: {error}") from None
    except RecursionError:
        raise BadImport("nested too deeply") from None
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise BadImport(f'not an Atri conversation export (expected "format": "{EXPORT_FORMAT}")')
    if type(data.get("version")) is not int or not 1 <= data["version"] <= EXPORT_VERSION:
        raise BadImport(f"unsupported export version {str(data.get('version'))[:20]!r}")
    items = data.get("messages")
    if not isinstance(items, list) or not items:
        raise BadImport('"messages" must be a non-empty list')
    if len(items) > MAX_IMPORT_MESSAGES:
        raise BadImport(f'"messages" has {len(items):,} entries; at most {MAX_IMPORT_MESSAGES:,} are taken')
    messages = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadImport(f"message {index + 1} is not an object")
        try:
            message = Message.from_dict({k: v for k, v in item.items() if k != "id"})
        except InvalidData as error:
            raise BadImport(f"message {index + 1}: {error}") from None
        if message.images and len(message.thumbnails) != len(message.images):
            message.thumbnails = [thumbnail_of(url) for url in message.images]
        messages.append(message)
    try:
        settings = conversation_settings(data.get("settings"))
    except InvalidData as error:
        raise BadImport(f"settings: {error}") from None
    title = data.get("title") if isinstance(data.get("title"), str) else ""
    return messages, clip_title(title or title_from(messages[0].content)), settings


class Transfer(Conversations):
    def export(self, owner: str, conversation_id: str) -> dict[str, Any] | None:
        snapshot = self.snapshot(owner, conversation_id)
        if snapshot.info is None:
            return None
        messages = []
        for item in snapshot.messages:
            data = item.to_dict()
            if item.facts and item.facts.request:  # an export stands alone
                data["facts"]["request"] = expand_request(item.facts.request, snapshot.by_id)
            data.pop("id", None)
            messages.append(data)
        settings = dict(snapshot.info.settings)
        if snapshot.info.summary:
            settings["summary"] = {"text": snapshot.info.summary.text, "through": snapshot.info.summary.through}
        return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "title": snapshot.info.title,
                "exported_at": now().isoformat(), "settings": settings, "messages": messages}

    def import_conversation(self, owner: str, raw: str | bytes) -> str:
        """A new conversation from exported JSON; raises BadImport (and writes nothing) when malformed."""
        messages, title, settings = parse_export(raw)
        return self._new_with(owner, messages, title, settings)

    def branch_off(self, owner: str, conversation_id: str, message_id: int) -> str | None:
        """A new chat of the owner's that holds the shown messages up to `message_id` and goes on from
        there ("branch into a new chat"); None when that message is not shown in the conversation. The
        copied answers carry no tokens or cost: those stay counted once, with the originals."""
        snapshot = self.snapshot(owner, conversation_id)
        ids = [item.id for item in snapshot.thread]
        if snapshot.info is None or message_id not in ids:
            return None
        exported = self.export(owner, conversation_id)
        messages = [Message.from_dict(data) for data in exported["messages"][:ids.index(message_id) + 1]]
        for message in messages:
            if message.facts is not None:
                message.facts = replace(message.facts, usage=None, cost=None, currency=None)
        return self._new_with(owner, messages, snapshot.info.title, dict(snapshot.info.settings))

    def _new_with(self, owner: str, messages: list[Message], title: str, settings: dict[str, Any]) -> str:
        summary = settings.pop("summary", None) or {}
        with self._session() as session:
            conversation_id = new_id()
            stamp = now()
            session.add(ConversationRow(id=conversation_id, owner=owner, title=clip_title(title), settings=settings,
                                        summary_text=summary.get("text"), summary_through=summary.get("through"),
                                        created_at=stamp, updated_at=stamp))
            session.flush()
            for position, message in enumerate(messages):  # shown once each knows its parent, below
                session.add(MessageRow(conversation_id=conversation_id, position=position, active=False,
                                       created_at=stamp, **row_values(message)))
            session.flush()
            before = aliased(MessageRow)
            parent = (select(before.id).where(before.conversation_id == MessageRow.conversation_id,
                                              before.position == MessageRow.position - 1).scalar_subquery())
            session.execute(update(MessageRow).where(MessageRow.conversation_id == conversation_id)
                            .values(parent_id=parent, active=True))
        return conversation_id
