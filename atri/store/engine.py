"""The engine, its migrations (Alembic, atomic on SQLite too), and what every resource's store shares."""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError as AlembicError
from sqlalchemy import create_engine, event, inspect, select, text
from sqlalchemy.engine import Connection as SqlConnection
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from .rows import ConversationRow

MIGRATIONS_DIR = Path(__file__).parents[1] / "migrations"
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


SQLITE_BUSY_TIMEOUT_MS = 5000  # how long a write waits for another writer's lock before it is refused


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers and one writer at once, across sessions
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
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


class Database:
    """The engine and its sessions; each resource's store (atri.storage.*) builds on it."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
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
        """The conversation if `owner` has it (and has not deleted it); `lock`: held until the transaction ends (PostgreSQL; a
        SQLite file has one writer at a time anyway), so that writers of one conversation take turns."""
        statement = select(ConversationRow).where(ConversationRow.id == conversation_id, ConversationRow.owner == owner,
                                                  ConversationRow.deleted_at.is_(None))
        return session.scalar(statement.with_for_update() if lock else statement)
