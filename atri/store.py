"""Conversations in SQL: a SQLite file by default, PostgreSQL when ATRI_DATABASE_URL names one.

Every read and write is scoped by owner: a conversation id belonging to someone else finds nothing.
Messages are rows in thread order; regenerating an answer or editing a question keeps the old rows
as inactive variants at the same position, so "1 / 2" can bring them back.
"""
from __future__ import annotations

import copy
import json
import secrets
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError as AlembicError
from pydantic import Field
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    event,
    func,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection as SqlConnection
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from .context import ContextSettings, Memory, Summary
from .documents import Chunk, StoredChunk
from .images import thumbnail_of
from .messages import MAX_NAME, AnswerFacts, InvalidData, Message, validated
from .pricing import Price, request_cost
from .request import expand_request

EXPORT_FORMAT = "atri.conversation"
EXPORT_VERSION = 1
TITLE_WORDS = 8
TITLE_CHARS = 40
TITLE_MAX_CHARS = 200  # the column's size
STREAMING = "streaming"  # the error kind of an answer while it is being written
STALE_AFTER = timedelta(seconds=15)  # a "streaming" answer not touched for this long was left behind
RUNNING_RUN, INTERRUPTED_RUN = "running", "interrupted"  # a batch run's status: going on; its process died
APPEND_TRIES = 5  # a message added at the end, when other writers keep taking the next place first
SNAPSHOTS_KEPT = 256  # conversations kept read in memory, most recently used
MAX_IMPORT_MESSAGES = 20_000


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


class MessageRow(Base):
    """One message. What totals, quotas and the usage dashboard add up is in columns (one SQL query);
    the rest (images, reasoning, notes, the request, the context report, options) is in `data`.
    Each fact is stored once: the raw response is rebuilt from these when it is shown."""

    __tablename__ = "messages"
    # One active row per place, whichever replica writes it: two that append at once cannot both take it.
    __table_args__ = (Index("ux_messages_active_position", "conversation_id", "position", unique=True,
                            sqlite_where=text("active"), postgresql_where=text("active")),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
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
    usage_estimated: Mapped[bool | None] = mapped_column(Boolean)
    cost: Mapped[float | None] = mapped_column(Float)  # at the prices of the day, in the price's currency
    currency: Mapped[str | None] = mapped_column(String(8))
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
    start: Mapped[int] = mapped_column(Integer)  # where it begins in its page's text
    text: Mapped[str] = mapped_column(Text)
    embedder: Mapped[str | None] = mapped_column(String(80))
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)  # float32, little-endian


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


class QuotaCounterRow(Base):
    """What one quota scope (a visitor, an address, the host's whole budget) spent in one period."""

    __tablename__ = "quota_counters"
    scope: Mapped[str] = mapped_column(String(120), primary_key=True)
    period: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # the period's start, seconds since the epoch
    requests: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)


@dataclass(frozen=True)
class CounterClaim:
    """Take one request and some tokens from a counter, unless that passes its limits (None: no limit)."""

    scope: str
    period: int
    max_requests: int | None = None
    max_tokens: int | None = None


@dataclass
class UsageTotals:
    answers: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cost: dict[str, float] = field(default_factory=dict)  # by currency


class StoredSummary(TypedDict):
    text: Annotated[str, Field(strict=True, max_length=200_000)]
    through: Annotated[int, Field(strict=True, ge=0)]


@dataclass(frozen=True)
class ConversationInfo:
    id: str
    title: str
    updated_at: datetime
    settings: dict[str, Any]
    summary: Summary | None = None

    @classmethod
    def of(cls, row: ConversationRow) -> ConversationInfo:
        summary = Summary(row.summary_text, row.summary_through or 0) if row.summary_text is not None else None
        return cls(row.id, row.title, row.updated_at, dict(row.settings or {}), summary)


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


@dataclass(frozen=True)
class DocumentInfo:
    id: int
    name: str
    message_id: int | None
    pages: int | None
    tokens: int
    chunks: int
    embedded: int  # chunks with a vector from the current embedder


MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x61747269  # "atri": one PostgreSQL advisory lock for migrations


def _legacy_version(connection: SqlConnection) -> int | None:
    """The version a database made before Alembic had (1 or 2), if it has not been stamped yet."""
    inspector = inspect(connection)
    if not inspector.has_table("atri_schema_version") or inspector.has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT max(version) FROM atri_schema_version")).scalar() or None


def _upgrade(connection: SqlConnection) -> str:
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # one writer, and the DDL inside the transaction
    else:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    legacy = _legacy_version(connection)
    if legacy:
        alembic_command.stamp(config, f"{legacy:04d}")
    alembic_command.upgrade(config, "head")
    return MigrationContext.configure(connection).get_current_revision() or ""


class StorageError(Exception):
    """The database did not take a read or write (locked, unreachable): worth trying again later."""


class SchemaProblem(Exception):
    """The database's schema could not be brought up to date (a file upgraded by hand, a revision this
    version does not know, a failing statement): nothing can be read or written until the host fixes it."""


class PlaceTaken(Exception):
    """Another writer (another replica, another tab) took this place in the conversation first: for an
    answer, someone is already answering that question."""


class BadImport(ValueError):
    """An import file that is not an Atri conversation; the message says what is wrong."""


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


FACT_FIELDS = ("model", "usage", "ttft_s", "total_s", "error_kind")  # kept in columns, not in `data`


def _columns(message: Message, price: Price | None = None) -> dict[str, Any]:
    facts, options = message.facts, message.options
    usage = facts.usage if facts else None
    cost = request_cost(price, usage, bool(message.reasoning)) if price and usage else None
    return {
        "provider": options.provider_id if options else None,
        "model": facts.model if facts else None,
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "reasoning_tokens": usage.reasoning_tokens if usage else None,
        "cached_tokens": usage.cached_tokens if usage else None,
        "usage_estimated": usage.estimated if usage else None,
        "cost": cost,
        "currency": price.currency if cost is not None else None,
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


def _row_values(message: Message, price: Price | None = None) -> dict[str, Any]:
    return {"role": message.role, "content": storable(message.content), "data": _message_data(message),
            "written_at": now(), **_columns(message, price)}


def _error_kind(row: MessageRow) -> str | None:
    """An answer marked as being written whose writer has stopped touching it was interrupted."""
    if row.error_kind == STREAMING and (row.written_at is None or _aware(row.written_at) < now() - STALE_AFTER):
        return "interrupted"
    return row.error_kind


def _aware(stamp: datetime) -> datetime:
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)  # SQLite hands back naive datetimes


def _message_dict(row: MessageRow) -> dict[str, Any]:
    """The message as one dict again: `data` with the columns put back."""
    data = dict(row.data) if isinstance(row.data, dict) else {}
    if isinstance(data.get("facts"), dict):
        usage = None
        if row.prompt_tokens is not None:
            usage = {"prompt_tokens": row.prompt_tokens, "completion_tokens": row.completion_tokens or 0,
                     "reasoning_tokens": row.reasoning_tokens or 0, "cached_tokens": row.cached_tokens or 0,
                     "estimated": bool(row.usage_estimated)}
        data["facts"] = {**data["facts"], "model": row.model or "", "usage": usage, "ttft_s": row.ttft_s,
                         "total_s": row.total_s, "error_kind": _error_kind(row)}
    if isinstance(data.get("options"), dict):
        data["options"] = {**data["options"], "provider_id": row.provider or ""}
    return {**data, "role": row.role, "content": row.content, "id": row.id}


def _to_message(row: MessageRow) -> Message:
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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers and one writer at once, across sessions
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@contextmanager
def _ddl_in_transactions(connection: SqlConnection) -> Iterator[None]:
    """On SQLite, the transactions of this connection are ours to begin (SQLAlchemy's recipe for pysqlite):
    left to itself, pysqlite begins one only before INSERT/UPDATE/DELETE, so ALTER and CREATE issued
    before that commit at once, and a killed upgrade left new columns under the old revision number
    (every later start failed with "duplicate column name")."""
    if connection.dialect.name != "sqlite":
        yield
        return
    driver = connection.connection.driver_connection
    default = driver.isolation_level
    driver.isolation_level = None
    try:
        yield
    finally:
        driver.isolation_level = default


def _to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)  # Chinese stored as itself: a third of the size of escapes


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, json_serializer=_to_json)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, json_serializer=_to_json)


class Store:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._snapshots: OrderedDict[tuple[str, str], _Kept] = OrderedDict()
        self._snapshots_lock = threading.Lock()
        # A SQLite file has one app process; its writers of new places take turns here (PostgreSQL's take
        # turns on the conversation's row lock). The unique index holds either way.
        self._places_lock: AbstractContextManager[Any] = threading.Lock() if self.engine.dialect.name == "sqlite" else nullcontext()
        self.migrate()

    def migrate(self) -> str:
        """Bring the schema to the newest Alembic revision (atri/migrations), in one transaction, on
        SQLite too: a process killed mid-upgrade leaves the database as it was, and the next start upgrades.

        A database from before Alembic (its own version table) is stamped at the revision it
        already has, not rebuilt. Replicas starting at once on PostgreSQL take turns.
        """
        with self.engine.connect() as connection, _ddl_in_transactions(connection):
            try:
                with connection.begin():
                    return _upgrade(connection)
            except (AlembicError, DatabaseError) as error:  # reached the database, and the upgrade failed
                detail = str(getattr(error, "orig", None) or error).splitlines()[0][:300]
                raise SchemaProblem(f"the schema could not be brought up to date: {detail}") from error

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:  # one transaction: commit on success, roll back on error
                yield session
        except (OperationalError, InterfaceError) as error:
            raise StorageError(type(error.orig).__name__ if error.orig else type(error).__name__) from error

    def _owned(self, session: Session, owner: str, conversation_id: str,
               lock: bool = False) -> ConversationRow | None:
        """The conversation if `owner` has it; `lock`: held until the transaction ends (PostgreSQL; a
        SQLite file has one writer at a time anyway), so that writers of one conversation take turns."""
        statement = select(ConversationRow).where(ConversationRow.id == conversation_id, ConversationRow.owner == owner)
        return session.scalar(statement.with_for_update() if lock else statement)

    # conversations

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

    def list_conversations(self, owner: str, query: str = "", limit: int = 200) -> list[ConversationInfo]:
        """Newest first; a query matches the title or any message text (case-insensitive)."""
        statement = select(ConversationRow).where(ConversationRow.owner == owner)
        if query.strip():
            pattern = f"%{query.strip().lower()}%"
            in_messages = select(MessageRow.conversation_id).where(func.lower(MessageRow.content).like(pattern))
            statement = statement.where(or_(func.lower(ConversationRow.title).like(pattern),
                                            ConversationRow.id.in_(in_messages)))
        statement = statement.order_by(ConversationRow.updated_at.desc()).limit(limit)
        with self._session() as session:
            return [ConversationInfo.of(row) for row in session.scalars(statement)]

    def answering(self, owner: str) -> set[str]:
        """The owner's conversations with an answer being written, by any replica (touched lately)."""
        statement = (select(MessageRow.conversation_id).distinct()
                     .join(ConversationRow, ConversationRow.id == MessageRow.conversation_id)
                     .where(ConversationRow.owner == owner, MessageRow.error_kind == STREAMING,
                            MessageRow.written_at >= now() - STALE_AFTER))
        with self._session() as session:
            return set(session.scalars(statement))

    def usage_totals(self, owner: str, since: datetime | None = None) -> UsageTotals:
        """Every answer of this owner (regenerated ones too: they were paid for), added up in one query."""
        conversations = select(ConversationRow.id).where(ConversationRow.owner == owner)
        statement = (select(MessageRow.currency, func.count(MessageRow.id), func.sum(MessageRow.prompt_tokens),
                            func.sum(MessageRow.completion_tokens), func.sum(MessageRow.reasoning_tokens),
                            func.sum(MessageRow.cached_tokens), func.sum(MessageRow.cost))
                     .where(MessageRow.conversation_id.in_(conversations), MessageRow.role == "assistant")
                     .group_by(MessageRow.currency))
        if since is not None:
            statement = statement.where(MessageRow.created_at >= since)
        totals = UsageTotals()
        with self._session() as session:
            for currency, answers, prompt, completion, reasoning, cached, cost in session.execute(statement):
                totals.answers += answers
                totals.prompt_tokens += prompt or 0
                totals.completion_tokens += completion or 0
                totals.reasoning_tokens += reasoning or 0
                totals.cached_tokens += cached or 0
                if currency and cost:
                    totals.cost[currency] = cost
        return totals

    def rename(self, owner: str, conversation_id: str, title: str) -> bool:
        with self._session() as session:
            row = self._owned(session, owner, conversation_id)
            if row:
                row.title = clip_title(title)
                _changed(row)
            return row is not None

    def update_settings(self, owner: str, conversation_id: str, settings: dict[str, Any]) -> None:
        with self._session() as session:
            row = self._owned(session, owner, conversation_id)
            if row:
                row.settings = {**(row.settings or {}), **storable(settings)}
                _changed(row)

    def delete(self, owner: str, conversation_id: str) -> bool:
        with self._session() as session:
            row = self._owned(session, owner, conversation_id)
            if row is None:
                return False
            session.execute(MessageRow.__table__.delete().where(MessageRow.conversation_id == conversation_id))
            session.execute(MemoryRow.__table__.delete().where(MemoryRow.conversation_id == conversation_id))
            session.delete(row)
            return True

    def app_secret(self, name: str) -> bytes:
        """A random 32-byte secret made once and kept in the database, so every replica and restart agrees."""
        with self._session() as session:
            row = session.get(AppSecretRow, name)
            if row is not None:
                return row.value
        try:
            with self._session() as session:
                session.add(AppSecretRow(name=name, value=secrets.token_bytes(32)))
        except IntegrityError:  # another replica made it first: theirs wins
            pass
        with self._session() as session:
            return session.get(AppSecretRow, name).value

    # quota counters (atri.quotas decides what to count; this keeps the counts, atomically)

    def claim_counters(self, claims: list[CounterClaim], tokens: int) -> CounterClaim | None:
        """Add one request and `tokens` to every claimed counter in one transaction, or to none: the first
        claim that would pass a limit comes back. Each counter is changed by one conditional UPDATE, so
        tabs and replicas racing on one database cannot both get the last request."""
        dialect_insert = postgres_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        counter = QuotaCounterRow
        with self._session() as session:
            for claim in sorted(claims, key=lambda c: (c.scope, c.period)):  # one lock order: no deadlocks
                session.execute(dialect_insert(counter).values(scope=claim.scope, period=claim.period, requests=0,
                                                               tokens=0).on_conflict_do_nothing())
                conditions = [counter.scope == claim.scope, counter.period == claim.period]
                if claim.max_requests is not None:
                    conditions.append(counter.requests < claim.max_requests)
                if claim.max_tokens is not None:
                    conditions.append(counter.tokens + tokens <= claim.max_tokens)
                taken = session.execute(update(counter).where(*conditions)
                                        .values(requests=counter.requests + 1, tokens=counter.tokens + tokens))
                if taken.rowcount == 0:
                    session.rollback()
                    return claim
        return None

    def add_counter_tokens(self, counters: list[tuple[str, int]], tokens: int) -> None:
        """Correct counters by `tokens` (the real usage minus what was estimated; may be negative)."""
        if not counters or not tokens:
            return
        with self._session() as session:
            for scope, period in sorted(counters):
                session.execute(update(QuotaCounterRow)
                                .where(QuotaCounterRow.scope == scope, QuotaCounterRow.period == period)
                                .values(tokens=func.max(0, QuotaCounterRow.tokens + tokens)
                                        if self.engine.dialect.name == "sqlite"
                                        else func.greatest(0, QuotaCounterRow.tokens + tokens)))

    def counters(self, counters: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[int, int]]:
        """(requests, tokens) spent by each counter; counters never used are left out."""
        if not counters:
            return {}
        wanted = or_(*(((QuotaCounterRow.scope == scope) & (QuotaCounterRow.period == period))
                       for scope, period in counters))
        with self._session() as session:
            rows = session.execute(select(QuotaCounterRow.scope, QuotaCounterRow.period, QuotaCounterRow.requests,
                                          QuotaCounterRow.tokens).where(wanted)).all()
        return {(row.scope, row.period): (row.requests, row.tokens) for row in rows}

    def forget_counters(self, before: int) -> None:
        """Drop counters of periods that started before `before` (seconds since the epoch)."""
        with self._session() as session:
            session.execute(QuotaCounterRow.__table__.delete().where(QuotaCounterRow.period < before))

    # messages

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
            stale = [head.id for head in heads if _stamp(head) != known.get(head.id, (None, None))[0]
                     or head.error_kind == STREAMING]
            query = select(MessageRow).where(MessageRow.conversation_id == conversation_id)
            if len(stale) < len(heads):
                query = query.where(MessageRow.id.in_(stale))
            fresh = {row.id: (_stamp(row), _to_message(row)) for row in session.scalars(query)} if stale else {}
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
                     price: Price | None = None) -> int:
        """Write an answer's row before its request goes out, so that every replica sees the question as
        being answered and none asks again; returns its position (the message gets its id). At the end
        (`position` None) only if the last message is a question; at `position` only if no active row
        is there. Raises PlaceTaken otherwise."""
        return self._insert(owner, conversation_id, message, position, price, claim=True).position

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
        message.id = item.id  # only once committed: a failed write leaves the message unsaved
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
            if claim and position is None:
                last = session.scalar(select(MessageRow.role).where(MessageRow.conversation_id == conversation_id,
                                                                    MessageRow.active)
                                      .order_by(MessageRow.position.desc()).limit(1))
                if last != "user":
                    raise PlaceTaken(conversation_id)
            if position is None:
                last_position = session.scalar(select(func.max(MessageRow.position))
                                               .where(MessageRow.conversation_id == conversation_id))
                position = 0 if last_position is None else last_position + 1
            row = MessageRow(conversation_id=conversation_id, position=position, active=True, created_at=now(),
                             **_row_values(message, price))
            session.add(row)
            conversation.updated_at = now()
            _changed(conversation)
            session.flush()
            return StoredMessage(row.id, position, message, 1, 1), version

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
            for name, value in _row_values(message, price).items():
                setattr(row, name, value)
            _changed(conversation)

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
            left_behind &= _stale(MessageRow)
        with self._session() as session:
            return session.execute(update(MessageRow).where(left_behind).values(error_kind="interrupted")).rowcount

    def save_summary(self, owner: str, conversation_id: str, summary: Summary) -> None:
        with self._session() as session:
            row = self._owned(session, owner, conversation_id)
            if row:
                row.summary_text, row.summary_through = storable(summary.text), summary.through
                _changed(row)

    def retire_from(self, owner: str, conversation_id: str, position: int) -> None:
        """Make the messages from `position` on inactive (they stay reachable as variants)."""
        with self._session() as session:
            conversation = self._owned(session, owner, conversation_id)
            if conversation is None:
                raise KeyError(conversation_id)
            session.execute(update(MessageRow).where(MessageRow.conversation_id == conversation_id,
                                                     MessageRow.position >= position).values(active=False))
            _changed(conversation)

    def show_variant(self, owner: str, message_id: int, step: int) -> None:
        """Switch the message's position to its previous (-1) or next (+1) variant."""
        with self._session() as session:
            row = session.get(MessageRow, message_id)
            conversation = self._owned(session, owner, row.conversation_id) if row else None
            if conversation is None:
                return
            _changed(conversation)
            siblings = session.scalars(select(MessageRow).where(
                MessageRow.conversation_id == row.conversation_id, MessageRow.position == row.position,
                MessageRow.role == row.role).order_by(MessageRow.id)).all()
            index = [s.id for s in siblings].index(row.id) + step
            if 0 <= index < len(siblings):
                row.active = False
                session.flush()  # first: one active row per place, at every moment
                siblings[index].active = True

    # recall memory

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

    # documents

    def add_document(self, owner: str, conversation_id: str, name: str, message_id: int | None, pages: int | None,
                     tokens: int, chunks: list[Chunk]) -> int:
        with self._session() as session:
            conversation = self._owned(session, owner, conversation_id)
            if conversation is None:
                raise KeyError(conversation_id)
            row = DocumentRow(conversation_id=conversation_id, message_id=message_id, name=storable(name)[:MAX_NAME],
                              pages=pages, tokens=tokens, created_at=now())
            session.add(row)
            session.flush()
            session.add_all(DocumentChunkRow(document_id=row.id, page=chunk.page, start=chunk.start,
                                             text=storable(chunk.text))
                            for chunk in chunks)
            _changed(conversation)
            return row.id

    def documents(self, owner: str, conversation_id: str, embedder: str) -> list[DocumentInfo]:
        embedded = func.count(DocumentChunkRow.id).filter(DocumentChunkRow.embedder == embedder)
        with self._session() as session:
            if self._owned(session, owner, conversation_id) is None:
                return []
            rows = session.execute(
                select(DocumentRow, func.count(DocumentChunkRow.id), embedded)
                .join(DocumentChunkRow, DocumentChunkRow.document_id == DocumentRow.id, isouter=True)
                .where(DocumentRow.conversation_id == conversation_id)
                .group_by(DocumentRow.id).order_by(DocumentRow.id)).all()
            return [DocumentInfo(row.id, row.name, row.message_id, row.pages, row.tokens, chunks, done)
                    for row, chunks, done in rows]

    def document_chunks(self, owner: str, conversation_id: str, embedder: str) -> list[StoredChunk]:
        """Every chunk of the conversation's documents, in order; vectors only from `embedder`."""
        with self._session() as session:
            if self._owned(session, owner, conversation_id) is None:
                return []
            rows = session.execute(
                select(DocumentChunkRow, DocumentRow.name).join(DocumentRow)
                .where(DocumentRow.conversation_id == conversation_id)
                .order_by(DocumentRow.id, DocumentChunkRow.id)).all()
            return [StoredChunk(chunk.id, chunk.document_id, name, chunk.page, chunk.text, chunk.start,
                                np.frombuffer(chunk.vector, dtype="<f4") if chunk.vector and chunk.embedder == embedder
                                else None) for chunk, name in rows]

    def pending_chunks(self, owner: str, conversation_id: str, embedder: str, limit: int) -> list[StoredChunk]:
        """The first `limit` chunks of the conversation's documents with no vector from `embedder`."""
        with self._session() as session:
            if self._owned(session, owner, conversation_id) is None:
                return []
            rows = session.execute(
                select(DocumentChunkRow, DocumentRow.name).join(DocumentRow)
                .where(DocumentRow.conversation_id == conversation_id,
                       or_(DocumentChunkRow.embedder.is_(None), DocumentChunkRow.embedder != embedder))
                .order_by(DocumentChunkRow.id).limit(limit)).all()
            return [StoredChunk(chunk.id, chunk.document_id, name, chunk.page, chunk.text, chunk.start, None)
                    for chunk, name in rows]

    def embedded_count(self, owner: str, conversation_id: str, embedder: str) -> tuple[int, int]:
        """How many of the conversation's chunks have a vector from `embedder`, of how many."""
        documents = self.documents(owner, conversation_id, embedder)
        return sum(d.embedded for d in documents), sum(d.chunks for d in documents)

    def save_chunk_vectors(self, owner: str, conversation_id: str, embedder: str,
                           vectors: dict[int, np.ndarray]) -> None:
        with self._session() as session:
            if self._owned(session, owner, conversation_id) is None:
                raise KeyError(conversation_id)
            own_documents = select(DocumentRow.id).where(DocumentRow.conversation_id == conversation_id)
            for chunk_id, vector in vectors.items():
                session.execute(update(DocumentChunkRow).where(DocumentChunkRow.id == chunk_id,
                                                               DocumentChunkRow.document_id.in_(own_documents))
                                .values(embedder=embedder, vector=np.asarray(vector, dtype="<f4").tobytes()))

    def document_tokens(self, owner: str, conversation_id: str) -> int:
        """The size of the conversation's documents, all together."""
        with self._session() as session:
            if self._owned(session, owner, conversation_id) is None:
                return 0
            return session.scalar(select(func.coalesce(func.sum(DocumentRow.tokens), 0))
                                  .where(DocumentRow.conversation_id == conversation_id))

    def remove_document(self, owner: str, conversation_id: str, document_id: int) -> None:
        with self._session() as session:
            conversation = self._owned(session, owner, conversation_id)
            row = session.get(DocumentRow, document_id)
            if conversation is None or row is None or row.conversation_id != conversation_id:
                raise KeyError(document_id)
            session.delete(row)
            _changed(conversation)

    def context_source(self, owner: str, conversation_id: str) -> StoredContext:
        return StoredContext(self, owner, conversation_id)

    # export / import

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
        summary = settings.pop("summary", None) or {}
        with self._session() as session:
            conversation_id = new_id()
            stamp = now()
            session.add(ConversationRow(id=conversation_id, owner=owner, title=clip_title(title), settings=settings,
                                        summary_text=summary.get("text"), summary_through=summary.get("through"),
                                        created_at=stamp, updated_at=stamp))
            session.flush()
            for position, message in enumerate(messages):
                session.add(MessageRow(conversation_id=conversation_id, position=position, active=True,
                                       created_at=stamp, **_row_values(message)))
        return conversation_id

    # saved batch runs (atri.batch) and the usage dashboard (atri.usage)

    def save_batch_run(self, owner: str, run_id: str, *, kind: str, title: str, status: str, provider: str | None,
                       model: str | None, rows: int, failed: int, prompt_tokens: int, completion_tokens: int,
                       cost: float | None, currency: str | None, data: dict[str, Any],
                       created_at: datetime | None = None) -> None:
        """Write (or write again) one run of the Batch page."""
        values = {"owner": owner, "kind": kind[:20], "title": clip_title(title), "status": status[:20],
                  "provider": (provider or None) and provider[:40], "model": (model or None) and model[:200],
                  "rows": rows, "failed": failed, "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "cost": cost, "currency": currency, "data": storable(data), "created_at": created_at or now(),
                  "written_at": now()}
        with self._session() as session:
            row = session.get(BatchRunRow, run_id)
            if row is not None and row.owner != owner:
                raise KeyError(run_id)
            if row is None:
                session.add(BatchRunRow(id=run_id, **values))
            else:
                for name, value in values.items():
                    setattr(row, name, value)

    def interrupt_stale_runs(self, at_start: bool = False) -> int:
        """Batch runs left "running" by a process that died, marked interrupted (as interrupt_stale_answers).
        Reading one already says so; this makes it last."""
        left_behind = BatchRunRow.status == RUNNING_RUN
        if not (at_start and self.engine.dialect.name == "sqlite"):
            left_behind &= _stale(BatchRunRow)
        with self._session() as session:
            return session.execute(update(BatchRunRow).where(left_behind).values(status=INTERRUPTED_RUN)).rowcount

    def still_running(self, run_ids: list[str]) -> None:
        """The batch runs with these ids are still going on in this process."""
        with self._session() as session:
            session.execute(update(BatchRunRow).where(BatchRunRow.id.in_(run_ids), BatchRunRow.status == RUNNING_RUN)
                            .values(written_at=now()))

    def batch_runs(self, owner: str, limit: int = 10) -> list[dict[str, Any]]:
        """This owner's last runs, newest first, without their rows."""
        columns = (BatchRunRow.id, BatchRunRow.kind, BatchRunRow.title, BatchRunRow.status, BatchRunRow.model,
                   BatchRunRow.rows, BatchRunRow.failed, BatchRunRow.cost, BatchRunRow.currency, BatchRunRow.created_at,
                   BatchRunRow.written_at)
        statement = (select(*columns).where(BatchRunRow.owner == owner)
                     .order_by(BatchRunRow.created_at.desc()).limit(limit))
        with self._session() as session:
            runs = [row._asdict() for row in session.execute(statement)]
        for run in runs:
            run["status"] = _run_status(run.pop("status"), run.pop("written_at"))
            run["created_at"] = _aware(run["created_at"])
        return runs

    def batch_run(self, owner: str, run_id: str) -> dict[str, Any] | None:
        """A run's record (atri.batch), its status as it stands: a run whose process died is "interrupted"."""
        with self._session() as session:
            row = session.scalar(select(BatchRunRow).where(BatchRunRow.id == run_id, BatchRunRow.owner == owner))
            if row is None or not isinstance(row.data, dict):
                return None
            return {**row.data, "status": _run_status(row.status, row.written_at)}

    def usage_report(self, owner: str | None, start: datetime | None = None,
                     end: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
        """Answers added up in SQL (never loaded one by one), for `owner` or, with None, for everyone;
        `start` inclusive, `end` exclusive. Median and p95 are nearest-rank, from window functions
        that SQLite and PostgreSQL share. Answers still being written are left out."""
        answers = [MessageRow.role == "assistant", or_(MessageRow.error_kind.is_(None), MessageRow.error_kind != STREAMING)]
        if owner is not None:
            answers.append(MessageRow.conversation_id.in_(select(ConversationRow.id).where(ConversationRow.owner == owner)))
        if start is not None:
            answers.append(MessageRow.created_at >= start.astimezone(UTC))
        if end is not None:
            answers.append(MessageRow.created_at < end.astimezone(UTC))
        stamp = MessageRow.created_at
        day = func.date(func.timezone("UTC", stamp) if self.engine.dialect.name == "postgresql" else stamp)
        sums = (func.count(MessageRow.id).label("answers"),
                func.coalesce(func.sum(MessageRow.prompt_tokens), 0).label("prompt_tokens"),
                func.coalesce(func.sum(MessageRow.completion_tokens), 0).label("completion_tokens"),
                func.coalesce(func.sum(MessageRow.reasoning_tokens), 0).label("reasoning_tokens"),
                func.coalesce(func.sum(MessageRow.cached_tokens), 0).label("cached_tokens"),
                func.sum(MessageRow.cost).label("cost"))
        model = func.coalesce(MessageRow.model, "").label("model")
        report: dict[str, list[dict[str, Any]]] = {}
        with self._session() as session:
            def rows(statement: Any) -> list[dict[str, Any]]:
                return [dict(row._mapping) for row in session.execute(statement)]

            report["by_day"] = rows(select(day.label("day"), model, MessageRow.currency, *sums,
                                           func.count(MessageRow.error_kind).label("errors")).where(*answers)
                                    .group_by(day, model, MessageRow.currency).order_by(day, model))
            by_model: dict[tuple[str, str | None], dict[str, Any]] = {}
            for row in report["by_day"]:  # a few rows a day: added up here rather than in another scan
                row["day"] = str(row["day"])[:10]
                total = by_model.setdefault((row["model"], row["currency"]), {
                    "model": row["model"], "currency": row["currency"], "cost": None,
                    **dict.fromkeys(("answers", "prompt_tokens", "completion_tokens", "reasoning_tokens",
                                     "cached_tokens", "errors"), 0)})
                for name in ("answers", "prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens", "errors"):
                    total[name] += int(row[name] or 0)
                if row["cost"] is not None:
                    total["cost"] = (total["cost"] or 0.0) + row["cost"]
            report["by_model"] = sorted(by_model.values(), key=lambda r: (r["model"], r["currency"] or ""))
            report["errors"] = rows(select(MessageRow.error_kind.label("kind"), func.count().label("answers"))
                                    .where(*answers, MessageRow.error_kind.is_not(None))
                                    .group_by(MessageRow.error_kind).order_by(func.count().desc()))
            report["times"] = []
            for metric in ("ttft_s", "total_s"):
                value = getattr(MessageRow, metric)
                ranked = (select(model, value.label("value"),
                                 func.row_number().over(partition_by=model, order_by=value).label("rank"),
                                 func.count().over(partition_by=model).label("n"))
                          .where(*answers, value.is_not(None)).subquery())
                median, p95 = (ranked.c.n * 50 + 99) // 100, (ranked.c.n * 95 + 99) // 100
                found: dict[str, dict[str, Any]] = {}
                for row in session.execute(select(ranked.c.model, ranked.c.value, ranked.c.rank, ranked.c.n, median, p95)
                                           .where(or_(ranked.c.rank == median, ranked.c.rank == p95))):
                    entry = found.setdefault(row[0], {"model": row[0], "metric": metric, "n": row[3]})
                    if row[2] == row[4]:
                        entry["median"] = row[1]
                    if row[2] == row[5]:
                        entry["p95"] = row[1]
                report["times"] += list(found.values())
            cost = func.sum(MessageRow.cost)
            top = (select(MessageRow.conversation_id.label("conversation"), MessageRow.currency, *sums)
                   .where(*answers, MessageRow.cost.is_not(None))
                   .group_by(MessageRow.conversation_id, MessageRow.currency).order_by(cost.desc()).limit(10).subquery())
            report["conversations"] = rows(select(top, ConversationRow.title, ConversationRow.owner)
                                           .join(ConversationRow, ConversationRow.id == top.c.conversation)
                                           .order_by(top.c.cost.desc()))
            runs = [] if owner is None else [BatchRunRow.owner == owner]
            if start is not None:
                runs.append(BatchRunRow.created_at >= start.astimezone(UTC))
            if end is not None:
                runs.append(BatchRunRow.created_at < end.astimezone(UTC))
            report["batch_runs"] = rows(
                select(func.coalesce(BatchRunRow.model, "").label("model"), BatchRunRow.currency,
                       func.count(BatchRunRow.id).label("runs"), func.sum(BatchRunRow.rows).label("rows"),
                       func.sum(BatchRunRow.failed).label("failed"),
                       func.sum(BatchRunRow.prompt_tokens).label("prompt_tokens"),
                       func.sum(BatchRunRow.completion_tokens).label("completion_tokens"),
                       func.sum(BatchRunRow.cost).label("cost"))
                .where(*runs).group_by(BatchRunRow.model, BatchRunRow.currency).order_by(BatchRunRow.model))
        return report


@dataclass(frozen=True)
class StoredContext:
    """One stored conversation as the context strategies see it (atri.context.ContextSource)."""

    store: Store
    owner: str
    conversation_id: str

    def summary(self) -> Summary | None:
        info = self.store.conversation(self.owner, self.conversation_id)
        return info.summary if info else None

    def save_summary(self, summary: Summary) -> None:
        self.store.save_summary(self.owner, self.conversation_id, summary)

    def memories(self, embedder: str) -> list[Memory]:
        return self.store.memories(self.owner, self.conversation_id, embedder)

    def add_memories(self, embedder: str, memories: list[Memory]) -> None:
        self.store.add_memories(self.owner, self.conversation_id, embedder, memories)

    def document_tokens(self) -> int:
        return self.store.document_tokens(self.owner, self.conversation_id)

    def document_chunks(self, embedder: str) -> list[StoredChunk]:
        return self.store.document_chunks(self.owner, self.conversation_id, embedder)


Stamp = tuple[datetime | None, str | None]  # a row's written_at and error kind: what changes when it is written
_HEAD_COLUMNS = (MessageRow.id, MessageRow.position, MessageRow.role, MessageRow.active, MessageRow.written_at,
                 MessageRow.error_kind)


def _run_status(status: str, written_at: datetime | None) -> str:
    if status == RUNNING_RUN and (written_at is None or _aware(written_at) < now() - STALE_AFTER):
        return INTERRUPTED_RUN
    return status


def _stale(table: type[MessageRow] | type[BatchRunRow]) -> Any:
    """Rows whose writer stopped touching them: it died (or lost the database) STALE_AFTER ago."""
    return or_(table.written_at.is_(None), table.written_at < now() - STALE_AFTER)


def _stamp(row: Any) -> Stamp:
    return row.written_at, row.error_kind


@dataclass
class _Kept:
    """A conversation as last read: its version, the snapshot, and each row's message with its stamp."""
    version: int
    snapshot: Snapshot
    messages: dict[int, tuple[Stamp, Message]]
    streaming: bool


def _snapshot_of(info: ConversationInfo, heads: list[Any], by_id: dict[int, Message]) -> Snapshot:
    variants: dict[tuple[int, str], list[int]] = defaultdict(list)
    for head in heads:
        variants[(head.position, head.role)].append(head.id)
    thread = []
    for head in heads:
        if head.active:
            siblings = variants[(head.position, head.role)]
            thread.append(StoredMessage(head.id, head.position, by_id[head.id], siblings.index(head.id) + 1,
                                        len(siblings)))
    return Snapshot(info, thread, by_id)


def _changed(conversation: ConversationRow) -> None:
    """Every write to a conversation raises its version (kept snapshots of it are then read again)."""
    conversation.version = ConversationRow.version + 1


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
