"""The schema is Alembic's (atri/migrations): blank databases, databases made before Alembic, and a
check that the models and the migrations agree — on SQLite and PostgreSQL."""
import hashlib
import threading
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    inspect,
    text,
)

from atri.store import Base, SchemaProblem, Store, make_engine

HEAD = "0017"


@pytest.fixture(params=["sqlite", "postgresql"])
def blank_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'atri.db'}"
    url = request.getfixturevalue("pg_url")
    engine = make_engine(url)
    with engine.begin() as connection:  # an empty database, whatever earlier tests left
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


def legacy_schema() -> MetaData:
    """The tables exactly as the version before Alembic made them (create_all of its classes)."""
    metadata = MetaData()
    Table("conversations", metadata,
          Column("id", String(40), primary_key=True), Column("owner", String(200), index=True, nullable=False),
          Column("title", String(200), nullable=False), Column("settings", JSON, nullable=False),
          Column("created_at", DateTime(timezone=True), nullable=False),
          Column("updated_at", DateTime(timezone=True), index=True, nullable=False))
    Table("messages", metadata,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), index=True, nullable=False),
          Column("position", Integer, nullable=False), Column("active", Boolean, nullable=False),
          Column("role", String(20), nullable=False), Column("content", Text, nullable=False),
          Column("data", JSON, nullable=False), Column("created_at", DateTime(timezone=True), nullable=False))
    Table("memories", metadata,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), index=True, nullable=False),
          Column("turn_key", String(80), nullable=False), Column("embedder", String(80), nullable=False),
          Column("text", Text, nullable=False), Column("vector", LargeBinary, nullable=False))
    Table("atri_schema_version", metadata, Column("version", Integer, primary_key=True))
    return metadata


def test_a_blank_database_is_migrated_to_head(blank_url):
    store = Store(blank_url)
    assert store.migrate() == HEAD  # a second run has nothing to do
    tables = set(inspect(store.engine).get_table_names())
    assert {"conversations", "messages", "memories", "app_secrets", "alembic_version"} <= tables
    assert "atri_schema_version" not in tables


def test_a_database_made_before_alembic_is_stamped_and_upgraded_with_its_data(blank_url):
    engine = create_engine(blank_url.replace("postgresql://", "postgresql+psycopg://"))
    legacy = legacy_schema()
    legacy.create_all(engine)
    token = "an-old-cookie-token-that-was-stored-plainly"
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(legacy.tables["atri_schema_version"].insert(), [{"version": 1}, {"version": 2}])
        connection.execute(legacy.tables["conversations"].insert().values(
            id="old", owner=f"anon:{token}", title="猫", settings={"context": {"strategy": "recall"}},
            created_at=stamp, updated_at=stamp))
        connection.execute(legacy.tables["messages"].insert().values(
            conversation_id="old", position=0, active=True, role="user", content="我的猫叫小橘", data={},
            created_at=stamp))
    engine.dispose()

    store = Store(blank_url)
    owner = "anon:" + hashlib.sha256(token.encode()).hexdigest()
    assert [m.content for m in store.messages(owner, "old")] == ["我的猫叫小橘"]
    assert store.conversation(owner, "old").settings == {"context": {"strategy": "recall"}}
    assert store.conversation(f"anon:{token}", "old") is None, "the plain token no longer opens anything"
    assert "atri_schema_version" not in inspect(store.engine).get_table_names()


def test_the_models_and_the_migrations_agree(blank_url):
    store = Store(blank_url)
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                       Base.metadata)
    assert differences == []


def test_replicas_starting_at_once_migrate_once(pg_url):
    engine = make_engine(pg_url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    failures: list[BaseException] = []

    def start() -> None:
        try:
            Store(pg_url)
        except BaseException as error:  # noqa: B036 — reported below
            failures.append(error)

    replicas = [threading.Thread(target=start) for _ in range(3)]
    for replica in replicas:
        replica.start()
    for replica in replicas:
        replica.join()
    assert failures == []
    assert Store(pg_url).migrate() == HEAD


def upgrade_to(url: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    from atri.store.engine import MIGRATIONS_DIR

    engine = make_engine(url)
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()


def test_answers_stored_as_before_move_their_facts_to_columns_and_read_back_the_same(blank_url):
    upgrade_to(blank_url, "0003")
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    facts = {"model": "qwen3-max", "finish_reason": "stop", "ttft_s": 0.3, "total_s": 1.5, "thinking_s": 0.8,
             "usage": {"prompt_tokens": 37, "completion_tokens": 73, "reasoning_tokens": 5, "cached_tokens": 2,
                       "estimated": False},
             "error_kind": None, "error_detail": None, "notes": [], "request": {"model": "qwen3-max"},
             "response": {"id": "chatcmpl-1", "choices": [{"message": {"content": "喵~", "reasoning_content": "想"}}]},
             "context": None}
    options = {"provider_id": "dashscope", "model": "qwen3-max", "temperature": 0.7, "thinking": True,
               "thinking_budget": 50, "json_mode": False, "system_prompt": ""}
    engine = make_engine(blank_url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO conversations (id, owner, title, settings, created_at, updated_at) "
                                "VALUES ('c', 'alice', 't', :settings, :now, :now)"),
                           {"settings": '{"context": {"strategy": "summary"}, "summary": {"text": "猫叫小橘", "through": 4}}',
                            "now": stamp})
        for position, (role, content, data) in enumerate([("user", "你好", {"images": []}),
                                                          ("assistant", "喵~", {"reasoning": "想", "facts": facts,
                                                                                "options": options})]):
            connection.execute(text("INSERT INTO messages (conversation_id, position, active, role, content, data, "
                                    "created_at) VALUES ('c', :position, :active, :role, :content, :data, :now)"),
                               {"position": position, "active": True, "role": role, "content": content,
                                "data": __import__("json").dumps(data, ensure_ascii=False), "now": stamp})
    engine.dispose()

    store = Store(blank_url)
    question, answer = store.messages("alice", "c")
    assert (question.content, answer.content, answer.reasoning) == ("你好", "喵~", "想")
    assert answer.facts.usage.prompt_tokens == 37 and answer.facts.model == "qwen3-max"
    assert answer.facts.response_id == "chatcmpl-1" and answer.options.provider_id == "dashscope"
    info = store.conversation("alice", "c")
    assert info.summary.text == "猫叫小橘" and info.summary.through == 4 and "summary" not in info.settings
    with store.engine.connect() as connection:
        stored = connection.execute(text("SELECT data FROM messages WHERE role = 'assistant'")).scalar()
    assert "喵~" not in str(stored), "the answer is stored once, in `content`"
    assert store.usage_totals("alice").prompt_tokens == 37


KILLER = """
import os, signal, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine

writes = 0

@event.listens_for(Engine, "before_cursor_execute")
def kill_at_a_write(connection, cursor, statement, parameters, context, executemany):
    global writes
    if statement.lstrip().upper().startswith(("ALTER", "CREATE", "DROP", "INSERT", "UPDATE")):
        writes += 1
        if writes == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)

from atri.store import Store
Store(sys.argv[1])
"""


def _old_database(url: str, conversations: int, per_conversation: int) -> None:
    """A database as the version before Alembic made it, with its conversations."""
    engine = make_engine(url)
    legacy_schema().create_all(engine)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO atri_schema_version (version) VALUES (2)"))
        connection.execute(text("INSERT INTO conversations VALUES (:id, 'owner', 'title', '{}', :at, :at)"),
                           [{"id": f"c{n}", "at": at} for n in range(conversations)])
        connection.execute(text("INSERT INTO messages (conversation_id, position, active, role, content, data, created_at) "
                                "VALUES (:c, :p, true, 'user', :text, '{}', :at)"),
                           [{"c": f"c{n}", "p": p, "text": f"message {n}.{p}", "at": at}
                            for n in range(conversations) for p in range(per_conversation)])
    engine.dispose()


@pytest.mark.parametrize("killed_at_write", [2, 9, 25])
def test_an_upgrade_killed_midway_leaves_the_database_as_it_was_and_the_next_start_upgrades(
        blank_url, killed_at_write):
    import subprocess
    import sys

    from tests.conftest import ROOT

    url = blank_url
    _old_database(url, conversations=1_000, per_conversation=20)
    killed = subprocess.run([sys.executable, "-c", KILLER, url, str(killed_at_write)], cwd=ROOT, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    store = Store(url)  # failed with "duplicate column name" when DDL committed outside the transaction
    assert store.migrate() == HEAD
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM messages")).scalar() == 20_000
        assert connection.execute(text("SELECT content FROM messages WHERE conversation_id = 'c999' AND position = 19"
                                       )).scalar() == "message 999.19"


def _half_upgraded(url: str) -> None:
    """A database at head whose version row says the revision before: as if someone had rolled back the
    number by hand, or an older tool had upgraded it without a transaction. 0010's index is already there."""
    store = Store(url)
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0009'"))
    store.engine.dispose()


def test_a_database_that_cannot_be_upgraded_says_so_and_keeps_its_data(blank_url):
    _half_upgraded(blank_url)
    with pytest.raises(SchemaProblem, match="could not be brought up to date"):
        Store(blank_url)
    engine = make_engine(blank_url)
    with engine.begin() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0009"
        connection.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": HEAD})  # for later tests
    engine.dispose()


def test_the_page_says_the_database_cannot_be_used_instead_of_a_traceback(dashscope_env, database_url):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    _half_upgraded(database_url)
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert [error.value for error in at.error] == [
        "The database could not be brought up to date for this version of Atri, so conversations cannot be opened "
        "now. Nothing in it was changed; the host's server log says why."]


def test_linear_conversations_become_trees_that_read_as_before(blank_url):
    """A conversation as revision 0011 stored it: a regenerated answer (two rows at one place) and an edited
    question (its old tail retired). After the upgrade it shows the same messages with the same ‹n/m›."""
    from alembic import command as alembic_command
    from alembic.config import Config as AlembicConfig

    from atri.store.engine import MIGRATIONS_DIR

    engine = make_engine(blank_url)
    with engine.begin() as connection:
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = connection
        alembic_command.upgrade(config, "0011")
        at = datetime(2026, 1, 1, tzinfo=UTC)
        connection.execute(text("INSERT INTO conversations (id, owner, title, settings, version, created_at, updated_at) "
                                "VALUES ('c', 'alice', 't', '{}', 0, :at, :at)"), {"at": at})
        rows = [(0, True, "user", "q1"), (1, False, "assistant", "a1 first"), (1, True, "assistant", "a1 second"),
                (2, True, "user", "q2"), (3, True, "assistant", "a2"), (4, False, "user", "q3 old"),
                (5, False, "assistant", "a3 old"), (4, True, "user", "q3 new")]
        connection.execute(text("INSERT INTO messages (conversation_id, position, active, role, content, data, created_at) "
                                "VALUES ('c', :position, :active, :role, :content, '{}', :at)"),
                           [{"position": p, "active": a, "role": r, "content": c, "at": at} for p, a, r, c in rows])
    engine.dispose()

    store = Store(blank_url)
    assert [(item.message.content, item.variant, item.variants) for item in store.thread("alice", "c")] == [
        ("q1", 1, 1), ("a1 second", 2, 2), ("q2", 1, 1), ("a2", 1, 1), ("q3 new", 2, 2)]
    store.show_variant("alice", store.thread("alice", "c")[1].id, -1)
    assert [item.message.content for item in store.thread("alice", "c")] == ["q1", "a1 first"], \
        "the first answer had no continuation"
