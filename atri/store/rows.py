"""The tables, and how a message becomes a row and back."""
from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import Field
from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, or_, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from ..context import ContextSettings
from ..messages import AnswerFacts, InvalidData, Message, validated
from ..pricing import Price, cache_saving, request_cost

TITLE_WORDS = 8
TITLE_CHARS = 40
TITLE_MAX_CHARS = 200  # the column's size
STREAMING = "streaming"  # the error kind of an answer while it is being written
STALE_AFTER = timedelta(seconds=15)  # a "streaming" answer not touched for this long was left behind
FACT_FIELDS = ("model", "usage", "ttft_s", "total_s", "error_kind", "cost", "currency", "saved")  # kept in columns, not in `data`
Stamp = tuple[datetime | None, str | None]  # a row's written_at and error kind: what changes when it is written


class Base(DeclarativeBase):
    pass


class ConversationRow(Base):
    __tablename__ = "conversations"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # per-conversation choices
    summary_text: Mapped[str | None] = mapped_column(Text)  # the rolling summary of the older turns
    summary_through: Mapped[int | None] = mapped_column(Integer)  # how many thread messages it stands for
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # raised by every write
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    # Set when its owner deleted it: its text is gone, its answers' tokens and cost stay for the accounts.
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))  # listed first


class MessageRow(Base):
    """One message. What totals, quotas and the usage dashboard add up is in columns (one SQL query);
    the rest (images, reasoning, notes, the request, the context report, options) is in `data`.
    Each fact is stored once: the raw response is rebuilt from these when it is shown."""

    __tablename__ = "messages"
    # A conversation is a tree: each message follows its parent, and `active` says which of a parent's
    # children is shown. One active child per parent (and one active first message), whichever replica
    # writes it: two that append at once cannot both take the place.
    __table_args__ = (
        Index("ux_messages_active_child", "parent_id", unique=True, sqlite_where=text("active AND parent_id IS NOT NULL"),
              postgresql_where=text("active AND parent_id IS NOT NULL")),
        Index("ux_messages_active_root", "conversation_id", unique=True, sqlite_where=text("active AND parent_id IS NULL"),
              postgresql_where=text("active AND parent_id IS NULL")),
        Index("ix_messages_conversation_position", "conversation_id", "position"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int | None] = mapped_column(Integer, index=True)  # None: the conversation's first message
    position: Mapped[int] = mapped_column(Integer)  # its depth: how many messages come before it on its branch
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    role: Mapped[str] = mapped_column(String(20))
    content: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    provider: Mapped[str | None] = mapped_column(String(40))
    model: Mapped[str | None] = mapped_column(String(200), index=True)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    reasoning_tokens: Mapped[int | None] = mapped_column(Integer)
    cached_tokens: Mapped[int | None] = mapped_column(Integer)
    cache_written_tokens: Mapped[int | None] = mapped_column(Integer)
    cache_explicit: Mapped[bool | None] = mapped_column(Boolean)
    usage_estimated: Mapped[bool | None] = mapped_column(Boolean)
    cost: Mapped[float | None] = mapped_column(Float)  # at the prices of the day, in the price's currency
    currency: Mapped[str | None] = mapped_column(String(8))
    saved: Mapped[float | None] = mapped_column(Float)  # what the provider's cache took off the cost, same prices
    ttft_s: Mapped[float | None] = mapped_column(Float)
    total_s: Mapped[float | None] = mapped_column(Float)
    error_kind: Mapped[str | None] = mapped_column(String(40), index=True)  # "streaming": being written
    # Set by every write of the row (and touched while streaming): processes re-read rows whose stamp changed.
    written_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MemoryRow(Base):
    """One embedded turn of a conversation, for recall memory."""

    __tablename__ = "memories"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    turn_key: Mapped[str] = mapped_column(String(80))
    embedder: Mapped[str] = mapped_column(String(80))
    text: Mapped[str] = mapped_column(Text)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian


class DocumentRow(Base):
    """A document attached to a conversation: its name and size; the text is in its chunks."""

    __tablename__ = "documents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int | None] = mapped_column(Integer)  # the question it came with
    name: Mapped[str] = mapped_column(String(255))  # clipped to MAX_NAME: an answer's context cites it
    pages: Mapped[int | None] = mapped_column(Integer)  # None: the format has no pages
    tokens: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DocumentChunkRow(Base):
    """A few paragraphs of a document, with their page and, once embedded, their vector."""

    __tablename__ = "document_chunks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    page: Mapped[int | None] = mapped_column(Integer)
    label: Mapped[str | None] = mapped_column(String(24))  # the page's printed label ("xiv"), when it has one
    start: Mapped[int] = mapped_column(Integer)  # where it begins in its page's text
    text: Mapped[str] = mapped_column(Text)
    embedder: Mapped[str | None] = mapped_column(String(80))
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)  # float32, little-endian


class ShareRow(Base):
    """A read-only copy of a chat (or of it up to one answer) at an unguessable address, made by its owner."""

    __tablename__ = "shares"
    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int | None] = mapped_column(Integer)  # shared up to this message; None: the whole chat
    title: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"messages": [...]}, as an export holds them
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AppSecretRow(Base):
    """Secrets the app makes for itself (e.g. the key that signs owner cookies), shared by every replica."""

    __tablename__ = "app_secrets"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)


class BatchRunRow(Base):
    """One saved run of the Batch page: what the usage page adds up in columns, the rest in `data`."""

    __tablename__ = "batch_runs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # "batch" | "sweep"
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))  # "running" | "done" | "stopped" (read: "interrupted")
    provider: Mapped[str | None] = mapped_column(String(40))
    model: Mapped[str | None] = mapped_column(String(200))
    rows: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    cost: Mapped[float | None] = mapped_column(Float)
    currency: Mapped[str | None] = mapped_column(String(8))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)  # the run's settings and rows (atri.batch)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    # Touched every few seconds while the run goes on: a "running" run not touched for STALE_AFTER was left
    # by a process that died, and is read as "interrupted".
    written_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Sent to the provider's Batch API: its batch id and last reported state. Such a run stays "running" for
    # up to a day with no process of its own; whichever replica claims `polled_at` asks the provider next.
    remote_id: Mapped[str | None] = mapped_column(String(80))
    remote_status: Mapped[str | None] = mapped_column(String(20), index=True)
    polled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class QuotaCounterRow(Base):
    """What one quota scope (a visitor, an address, the host's whole budget) spent in one period."""

    __tablename__ = "quota_counters"
    scope: Mapped[str] = mapped_column(String(120), primary_key=True)
    period: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # the period's start, seconds since the epoch
    requests: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)


class StoredSummary(TypedDict):
    text: Annotated[str, Field(strict=True, max_length=200_000)]
    through: Annotated[int, Field(strict=True, ge=0)]


def now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return secrets.token_urlsafe(16)


def title_from(text_: str) -> str:
    words = text_.split()
    title = " ".join(words[:TITLE_WORDS]) if len(words) > 1 else text_.strip()
    if len(title) > TITLE_CHARS:
        cut = title[:TITLE_CHARS]
        title = (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"
    return title


def storable(value: Any) -> Any:
    """The value with NUL characters removed from every string: PostgreSQL refuses them in text and
    JSON, SQLite keeps them, and text that arrived must never be lost to that difference."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def clip_title(title: str) -> str:
    return storable(title).strip()[:TITLE_MAX_CHARS]


def _columns(message: Message, price: Price | None = None) -> dict[str, Any]:
    facts, options = message.facts, message.options
    usage = facts.usage if facts else None
    if price and usage:
        thought = bool(message.reasoning)
        cost, currency = request_cost(price, usage, thought, facts.web_searches if facts else None), price.currency
        saved = cache_saving(price, usage, thought) if usage.cached_tokens or usage.cache_written_tokens else None
    else:  # no price given (an import): the cost it was stored with, if any
        cost, currency, saved = (facts.cost, facts.currency, facts.saved) if facts else (None, None, None)
    return {
        "provider": options.provider_id if options else None,
        "model": facts.model if facts else None,
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "reasoning_tokens": usage.reasoning_tokens if usage else None,
        "cached_tokens": usage.cached_tokens if usage else None,
        "cache_written_tokens": usage.cache_written_tokens if usage else None,
        "cache_explicit": usage.cache_explicit if usage else None,
        "saved": saved if cost is not None else None,
        "usage_estimated": usage.estimated if usage else None,
        "cost": cost,
        "currency": currency if cost is not None else None,
        "ttft_s": facts.ttft_s if facts else None,
        "total_s": facts.total_s if facts else None,
        "error_kind": facts.error_kind if facts else None,
    }


def _message_data(message: Message) -> dict[str, Any]:
    """The message without what its row's columns hold."""
    data = storable(message.to_dict())
    data.pop("role"), data.pop("content"), data.pop("id", None)
    for name in FACT_FIELDS:
        (data.get("facts") or {}).pop(name, None)
    (data.get("options") or {}).pop("provider_id", None)
    return data


def row_values(message: Message, price: Price | None = None) -> dict[str, Any]:
    return {"role": message.role, "content": storable(message.content), "data": _message_data(message),
            "written_at": now(), **_columns(message, price)}


def _error_kind(row: MessageRow) -> str | None:
    """An answer marked as being written whose writer has stopped touching it was interrupted."""
    if row.error_kind == STREAMING and left_behind(row.written_at):
        return "interrupted"
    return row.error_kind


def aware(stamp: datetime) -> datetime:
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)  # SQLite hands back naive datetimes


def _message_dict(row: MessageRow) -> dict[str, Any]:
    """The message as one dict again: `data` with the columns put back."""
    data = dict(row.data) if isinstance(row.data, dict) else {}
    if isinstance(data.get("facts"), dict):
        usage = None
        if row.prompt_tokens is not None:
            usage = {"prompt_tokens": row.prompt_tokens, "completion_tokens": row.completion_tokens or 0,
                     "reasoning_tokens": row.reasoning_tokens or 0, "cached_tokens": row.cached_tokens or 0,
                     "estimated": bool(row.usage_estimated), "cache_written_tokens": row.cache_written_tokens or 0,
                     "cache_explicit": bool(row.cache_explicit)}
        data["facts"] = {**data["facts"], "model": row.model or "", "usage": usage, "ttft_s": row.ttft_s,
                         "total_s": row.total_s, "error_kind": _error_kind(row), "cost": row.cost,
                         "currency": row.currency, "saved": row.saved}
    if isinstance(data.get("options"), dict):
        data["options"] = {**data["options"], "provider_id": row.provider or ""}
    return {**data, "role": row.role, "content": row.content, "id": row.id}


def to_message(row: MessageRow) -> Message:
    """The stored message, or, when the row does not validate (an old or damaged database), a
    placeholder that says it could not be read: one bad row never takes the page down."""
    try:
        return Message.from_dict(_message_dict(row), stored=True)
    except InvalidData as error:
        return Message("assistant", "", facts=AnswerFacts(model="", error_kind="unreadable", error_detail=str(error)),
                       id=row.id)


def conversation_settings(raw: Any) -> dict[str, Any]:
    """Per-conversation settings from outside, checked: the context strategy's and the rolling summary."""
    raw = raw if isinstance(raw, dict) else {}
    settings: dict[str, Any] = {}
    if "context" in raw:
        settings["context"] = validated(ContextSettings, raw["context"]).to_dict()
    if raw.get("summary") is not None:
        settings["summary"] = validated(StoredSummary, raw["summary"])
    return storable(settings)


def stale(table: type[MessageRow] | type[BatchRunRow]) -> Any:
    """Rows whose writer stopped touching them: it died (or lost the database) STALE_AFTER ago."""
    return or_(table.written_at.is_(None), table.written_at < now() - STALE_AFTER)


def touched_lately(table: type[MessageRow] | type[BatchRunRow]) -> Any:
    return table.written_at >= now() - STALE_AFTER


def left_behind(written_at: datetime | None) -> bool:
    """Read back: a row its writer stopped touching STALE_AFTER ago."""
    return written_at is None or aware(written_at) < now() - STALE_AFTER


def stamp_of(row: Any) -> Stamp:
    return row.written_at, row.error_kind


def mark_changed(conversation: ConversationRow) -> None:
    """Every write to a conversation raises its version (kept snapshots of it are then read again)."""
    conversation.version = ConversationRow.version + 1
