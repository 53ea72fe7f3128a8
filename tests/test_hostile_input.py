"""What an attacker of a public demo tried (issue 14), as regression tests on SQLite and PostgreSQL:
imports that name server files or carry wrong types, NUL characters, long titles, a locked database."""
import json
import os
import struct
import threading
import time
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from atri.images import ImageBatch, file_to_data_url, image_from_bytes
from atri.messages import AnswerFacts, ChatOptions, InvalidData, Message, Usage
from atri.saving import ProgressSaver
from atri.store import BadImport, Store, parse_export
from atri.turn import Turn
from tests.test_images import png


def export_with(message: dict, **top) -> str:
    return json.dumps({"format": "atri.conversation", "version": 1, "messages": [message], **top})


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims a huge size in a few bytes: what a decompression bomb looks like to a reader."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("reference", ["/etc/hostname", "/dev/zero", "file:///etc/passwd", "../../app.py",
                                       "data:text/plain;base64,aGk=", "data:image/png;base64,AAAA", "javascript:x"])
def test_an_import_naming_a_server_file_as_an_image_is_refused_and_writes_nothing(store, reference):
    with pytest.raises(BadImport, match=r"message 1: images\.0"):
        store.import_conversation("bob", export_with({"role": "user", "content": "look", "images": [reference]}))
    assert store.list_conversations("bob") == []


def test_a_named_pipe_as_an_image_is_refused_without_opening_it(store, tmp_path):
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)  # opening it for reading would block forever
    with pytest.raises(BadImport, match="images"):
        store.import_conversation("bob", export_with({"role": "user", "content": "x", "images": [str(pipe)]}))


@pytest.mark.parametrize("message, settings_, field", [
    ({"role": "assistant", "content": "x", "options": {"provider_id": "dashscope", "model": "m", "temperature": "hot"}},
     None, "options.temperature"),
    ({"role": "assistant", "content": "x", "facts": {"model": "m", "usage": {"prompt_tokens": "many"}}},
     None, "facts.usage.prompt_tokens"),
    ({"role": "assistant", "content": "x", "facts": {"model": "m", "notes": ["<script>"]}}, None, "facts.notes.0"),
    ({"role": "assistant", "content": "x", "facts": {"model": "m", "notes": "note"}}, None, "facts.notes"),
    ({"role": "assistant", "content": "x", "facts": {"model": "m", "request": {"messages": [1]}}},
     None, "facts.request.messages"),
    ({"role": "user", "content": "x"}, {"context": {"strategy": "full", "last_n": 999}}, "settings: last_n"),
    ({"role": "user", "content": "x"}, {"summary": {"text": 5, "through": 1}}, "settings: text"),
])
def test_an_import_with_wrong_value_types_is_refused_naming_the_field(store, message, settings_, field):
    raw = export_with(message, **({"settings": settings_} if settings_ else {}))
    with pytest.raises(BadImport, match=field.replace(".", r"\.")):
        store.import_conversation("bob", raw)
    assert store.list_conversations("bob") == []


def test_a_file_nested_100000_levels_deep_is_refused_cleanly():
    with pytest.raises(BadImport, match="nested"):
        parse_export('{"format": "atri.conversation", "version": 1, "messages": [' + "[" * 100_000 + "]" * 100_000 + "]}")
    deep = {"role": "assistant", "content": "x", "facts": {"model": "m", "response": {}}}
    node = deep["facts"]["response"]
    for _ in range(200):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(BadImport, match="nested"):
        parse_export(export_with(deep))


def test_an_old_row_that_names_a_server_file_reads_back_as_unreadable_not_as_a_path(store):
    cid = store.create_conversation("alice", "old")
    store.append("alice", cid, Message("user", "hello"))
    with store.engine.begin() as connection:  # what an older version let in
        connection.execute(text("UPDATE messages SET data = :data"), {"data": json.dumps({"images": ["/etc/hostname"]})})
        connection.execute(text("UPDATE conversations SET version = version + 1"))  # as a write does
    [item] = store.snapshot("alice", cid).thread
    assert item.message.images == [] and item.message.facts.error_kind == "unreadable"
    assert "images.0" in item.message.facts.error_detail


def test_nul_characters_are_stored_on_every_backend_and_the_text_around_them_kept(store):
    cid = store.create_conversation("alice", "a\x00b")
    store.append("alice", cid, Message("user", "question\x00 with a NUL"))
    facts = AnswerFacts(model="m", finish_reason="stop", error_detail="x\x00", usage=Usage(1, 2))
    store.append("alice", cid, Message("assistant", "answer\x00 that arrived", reasoning="r\x00", facts=facts))
    messages = store.messages("alice", cid)
    assert [m.content for m in messages] == ["question with a NUL", "answer that arrived"]
    assert messages[1].reasoning == "r" and store.conversation("alice", cid).title == "ab"


def test_an_imported_title_of_any_length_is_clipped_to_fit(store):
    cid = store.import_conversation("bob", export_with({"role": "user", "content": "hi"}, title="长" * 500))
    assert store.conversation("bob", cid).title == "长" * 200


def test_images_over_the_pixel_limit_are_refused_with_their_size_not_decoded():
    batch = ImageBatch()
    file_to_data_url("bomb.png", png_header(20_000, 20_000), batch)  # 400 megapixels in a few hundred bytes
    file_to_data_url("big.png", png_header(9_000, 9_000), batch)  # 81 MP: under Pillow's own error, over ours
    assert batch.urls == []
    assert [(key, values["megapixels"]) for key, values in batch.problems] == \
        [("image_too_many_pixels", "400"), ("image_too_many_pixels", "81")]


def test_an_upload_is_shown_from_a_small_thumbnail_made_once():
    url, thumbnail = image_from_bytes("cat.png", png(3000, 2000))
    assert url.startswith("data:image/png;base64,") and thumbnail.startswith("data:image/webp;base64,")
    assert len(thumbnail) < len(url) / 10


def answer_turn(content: str, finish: str | None = "stop") -> Turn:
    turn = Turn(model="qwen3-max", request={"model": "qwen3-max"}, notes=[])
    turn.content, turn.finish_reason, turn.ended_at = content, finish, turn.started + 1
    return turn


def hold_sqlite_lock(path, seconds: float) -> threading.Thread:
    import sqlite3

    held = threading.Event()

    def hold() -> None:
        connection = sqlite3.connect(path, timeout=0)
        connection.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        connection.rollback()
        connection.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    held.wait(5)
    return thread


def test_a_database_locked_longer_than_its_timeout_loses_nothing_of_a_streaming_answer(tmp_path, monkeypatch):
    monkeypatch.setattr("atri.saving.FINAL_RETRY_S", 1.0)
    monkeypatch.setattr("atri.store.engine.SQLITE_BUSY_TIMEOUT_MS", 1000)
    store = Store(f"sqlite:///{tmp_path / 'atri.db'}")
    cid = store.create_conversation("alice")
    store.append("alice", cid, Message("user", "hi"))
    saver = ProgressSaver(store, "alice", cid, ChatOptions("dashscope", "qwen3-max"), None)
    saver.update(answer_turn("第一", finish=None))
    locker = hold_sqlite_lock(tmp_path / "atri.db", seconds=4)  # longer than SQLite waits (busy timeout)
    saver.update(answer_turn("第一部分", finish=None))  # refused: kept in memory, no exception
    answer = saver.finish(answer_turn("第一部分,完整的回答"))
    assert not saver.saved.is_set() and answer.content == "第一部分,完整的回答"  # on the page, not yet stored
    locker.join()
    assert saver.saved.wait(15), "the background write lands once the database answers"
    stored = store.messages("alice", cid)[-1]
    assert stored.content == "第一部分,完整的回答" and stored.facts.error_kind is None


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                           lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
                           max_leaves=30)
message_like = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "x"]),
                                      "content": st.text() | json_values},
                                     optional={"images": st.lists(st.text()) | json_values, "reasoning": json_values,
                                               "facts": st.dictionaries(st.sampled_from(
                                                   ["model", "usage", "notes", "request", "context", "ttft_s"]),
                                                   json_values) | json_values,
                                               "options": json_values})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message_like)
def test_any_message_shaped_json_becomes_a_valid_message_or_a_clean_refusal(data):
    try:
        message = Message.from_dict(data)
    except InvalidData:
        return
    assert message.role in ("system", "user", "assistant") and isinstance(message.content, str)
    assert all(url.startswith(("http://", "https://", "data:image/")) for url in message.images)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, st.builds(lambda m, extra: {"format": "atri.conversation", "version": 1,
                                                           "messages": m, **extra},
                                          st.lists(message_like, max_size=3), st.dictionaries(st.text(), json_values))),
       st.sampled_from([str, lambda text_: text_.encode("utf-8", "surrogatepass")]))
def test_any_import_file_is_taken_whole_or_refused_with_a_reason(data, encode):
    try:
        raw = encode(json.dumps(data))
    except (ValueError, TypeError):
        return
    try:
        messages, title, conversation_settings = parse_export(raw)
    except BadImport as error:
        assert str(error)
        return
    assert messages and len(title) <= 200 and isinstance(conversation_settings, dict)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1))
def test_any_text_is_stored_and_read_back_without_an_error(tmp_path_factory, content):
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('h') / 'a.db'}")
    cid = store.create_conversation("alice", content)
    store.append("alice", cid, Message("user", content))
    assert store.messages("alice", cid)[0].content == content.replace("\x00", "")
