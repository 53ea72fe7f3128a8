"""Conversations in SQL, against SQLite and a real PostgreSQL server."""
import json
import threading

import pytest
from sqlalchemy import event, text

from atri.images import image_from_bytes
from atri.messages import AnswerFacts, ChatOptions, Message, Usage
from atri.store import STREAMING, BadImport, Store, title_from
from tests.test_images import png


def answer(content, reasoning="", finish="stop"):
    facts = AnswerFacts(model="qwen3-max", finish_reason=finish, ttft_s=0.3, total_s=1.2,
                        usage=Usage(37, 73, 5, 0), request={"model": "qwen3-max"})
    return Message("assistant", content, reasoning=reasoning, facts=facts,
                   options=ChatOptions("dashscope", "qwen3-max", thinking=True, thinking_budget=50))


def test_a_conversation_round_trips_with_everything(store):
    cid = store.create_conversation("alice", "first")
    store.append("alice", cid, Message("user", "这张图显示了什么", images=["https://example.com/a.png"]))
    store.append("alice", cid, answer("一套穿搭", reasoning="看图"))
    again = Store(str(store.engine.url.render_as_string(hide_password=False)))  # a restarted server
    user, reply = again.messages("alice", cid)
    assert user.images == ["https://example.com/a.png"]
    assert reply.reasoning == "看图" and reply.facts.usage.completion_tokens == 73
    assert reply.options.thinking_budget == 50


def test_streaming_progress_is_saved_in_place(store):
    cid = store.create_conversation("alice")
    store.append("alice", cid, Message("user", "hi"))
    partial = Message("assistant", "Hel")
    partial.id = store.append("alice", cid, partial)
    partial.content = "Hello there"
    store.save("alice", partial)
    assert store.messages("alice", cid)[-1].content == "Hello there"


def test_other_owners_see_nothing(store):
    cid = store.create_conversation("alice", "secret plans")
    store.append("alice", cid, Message("user", "my flight is on the 14th"))
    assert store.conversation("mallory", cid) is None
    assert store.messages("mallory", cid) == []
    assert store.list_conversations("mallory") == []
    assert not store.rename("mallory", cid, "pwned") and not store.delete("mallory", cid)
    with pytest.raises(KeyError):
        store.append("mallory", cid, Message("user", "injected"))
    assert store.conversation("alice", cid).title == "secret plans"


def test_list_is_newest_first_and_searchable_by_title_or_text(store):
    old = store.create_conversation("alice", "Cats")
    store.append("alice", old, Message("user", "我的猫叫小橘"))
    new = store.create_conversation("alice", "Travel")
    store.append("alice", new, Message("user", "flight on the 14th"))
    assert [c.id for c in store.list_conversations("alice")] == [new, old]
    assert [c.id for c in store.list_conversations("alice", "小橘")] == [old]
    assert [c.id for c in store.list_conversations("alice", "travel")] == [new]
    assert store.list_conversations("alice", "nothing like this") == []


def test_rename_and_delete(store):
    cid = store.create_conversation("alice", "old")
    store.append("alice", cid, Message("user", "x"))
    assert store.rename("alice", cid, "new name")
    assert store.conversation("alice", cid).title == "new name"
    assert store.delete("alice", cid)
    assert store.conversation("alice", cid) is None and store.messages("alice", cid) == []


def test_regenerate_keeps_the_old_answer_reachable(store):
    cid = store.create_conversation("alice")
    store.append("alice", cid, Message("user", "q"))
    first_id = store.append("alice", cid, answer("first answer"))
    position = store.thread("alice", cid)[-1].position
    store.retire_from("alice", cid, position)
    store.append("alice", cid, answer("second answer"), position=position)
    last = store.thread("alice", cid)[-1]
    assert (last.message.content, last.variant, last.variants) == ("second answer", 2, 2)
    store.show_variant("alice", last.id, -1)
    last = store.thread("alice", cid)[-1]
    assert (last.message.content, last.variant, last.id) == ("first answer", 1, first_id)


def four_turns(store, owner="alice"):
    cid = store.create_conversation(owner)
    for n in range(1, 5):
        store.append(owner, cid, Message("user", f"question {n}"))
        store.append(owner, cid, answer(f"answer {n}"))
    return cid


def shown(store, cid, owner="alice"):
    return [(item.message.content, item.variant, item.variants) for item in store.thread(owner, cid)]


def test_editing_an_early_question_makes_a_branch_and_the_old_turns_come_back(store):
    cid = four_turns(store)
    store.retire_from("alice", cid, 0)
    store.append("alice", cid, Message("user", "question 1, edited"), position=0)
    store.append("alice", cid, answer("answer to the edit"))
    assert shown(store, cid) == [("question 1, edited", 2, 2), ("answer to the edit", 1, 1)]

    edited = store.thread("alice", cid)[0]
    store.show_variant("alice", edited.id, -1)
    assert shown(store, cid) == [("question 1", 1, 2), ("answer 1", 1, 1), ("question 2", 1, 1), ("answer 2", 1, 1),
                                 ("question 3", 1, 1), ("answer 3", 1, 1), ("question 4", 1, 1), ("answer 4", 1, 1)]
    store.show_variant("alice", store.thread("alice", cid)[0].id, +1)
    assert [content for content, _, _ in shown(store, cid)] == ["question 1, edited", "answer to the edit"]


def test_regenerating_a_middle_answer_keeps_both_continuations(store):
    cid = four_turns(store)
    store.retire_from("alice", cid, 3)  # answer 2
    store.append("alice", cid, answer("answer 2, again"), position=3)
    store.append("alice", cid, Message("user", "question 3 on the new branch"))
    assert shown(store, cid)[2:] == [("question 2", 1, 1), ("answer 2, again", 2, 2), ("question 3 on the new branch", 1, 1)]
    store.show_variant("alice", store.thread("alice", cid)[3].id, -1)
    assert [content for content, _, _ in shown(store, cid)][3:] == ["answer 2", "question 3", "answer 3", "question 4",
                                                                    "answer 4"]


def test_deleting_a_message_takes_what_follows_it_keeps_the_accounts_and_shows_its_other_variant(store):
    cid = four_turns(store)
    assert store.delete_message("alice", store.thread("alice", cid)[-1].id) == 1, "the last answer alone"
    assert [content for content, _, _ in shown(store, cid)][-2:] == ["answer 3", "question 4"]

    store.retire_from("alice", cid, 3)  # answer 2 regenerated: two variants
    store.append("alice", cid, answer("answer 2, again"), position=3)
    regenerated = store.thread("alice", cid)[3]
    assert store.delete_message("bob", regenerated.id) == 0, "only its owner"
    assert store.delete_message("alice", regenerated.id) == 1
    assert shown(store, cid)[3:] == [("answer 2", 1, 1), ("question 3", 1, 1), ("answer 3", 1, 1), ("question 4", 1, 1)]

    question_2 = store.thread("alice", cid)[2]
    assert store.delete_message("alice", question_2.id) == 5, "question 2 and the four after it"
    assert [content for content, _, _ in shown(store, cid)] == ["question 1", "answer 1"]
    assert store.delete_message("alice", question_2.id) == 0, "once"
    totals = store.usage_totals("alice")
    assert (totals.answers, totals.completion_tokens) == (5, 5 * 73), "every answer stays in the accounts"
    assert "answer 3" not in json.dumps([m.to_dict() for m in store.snapshot("alice", cid).by_id.values()]), \
        "their text is gone"
    store.append("alice", cid, Message("user", "question 2, anew"))
    assert shown(store, cid)[-1] == ("question 2, anew", 1, 1), "no deleted message counts as a variant"


def test_an_import_is_a_branch_that_goes_on(store):
    cid = four_turns(store)
    copy_id = store.import_conversation("bob", json.dumps(store.export("alice", cid)))
    store.append("bob", copy_id, Message("user", "question 5"))
    assert [content for content, _, _ in shown(store, copy_id, "bob")] == [
        content for content, _, _ in shown(store, cid)] + ["question 5"]


def test_branching_into_a_new_chat_copies_the_shown_messages_up_to_one_and_goes_on(store):
    cid = four_turns(store)
    second_answer = store.thread("alice", cid)[3]
    branch = store.branch_off("alice", cid, second_answer.id)
    assert [item.message.content for item in store.thread("alice", branch)] == [
        "question 1", "answer 1", "question 2", "answer 2"]
    store.append("alice", branch, Message("user", "a new direction"))
    assert len(store.thread("alice", cid)) == 8, "the original is untouched"
    assert store.usage_totals("alice").prompt_tokens == 4 * 37, "what the copies used is counted once"
    assert store.branch_off("bob", cid, second_answer.id) is None and store.branch_off("alice", cid, 10**9) is None


def test_export_then_import_is_a_complete_copy(store):
    cid = store.create_conversation("alice", "Atri chat")
    url, thumbnail = image_from_bytes("cat.png", png(64, 32))
    store.append("alice", cid, Message("user", "hi", images=[url], thumbnails=[thumbnail]))
    store.append("alice", cid, answer("喵~", reasoning="think"))
    exported = store.export("alice", cid)
    raw = json.dumps(exported, ensure_ascii=False)
    assert "sk-" not in raw
    copy = store.import_conversation("bob", raw)
    assert copy != cid
    assert [m.to_dict() | {"id": None} for m in store.messages("bob", copy)] == \
           [m.to_dict() | {"id": None} for m in store.messages("alice", cid)]


@pytest.mark.parametrize("raw, reason", [
    ("{not json", "not JSON"),
    ('{"format": "something else"}', "not an Atri conversation"),
    ('{"format": "atri.conversation", "version": 1, "messages": []}', "non-empty list"),
    ('{"format": "atri.conversation", "version": 1, "messages": [{"role": "wizard", "content": "x"}]}', "message 1"),
    ('{"format": "atri.conversation", "version": 1, "messages": [{"role": "user", "content": 5}]}', "message 1"),
])
def test_malformed_imports_are_refused_and_change_nothing(store, raw, reason):
    before = store.list_conversations("bob")
    with pytest.raises(BadImport, match=reason):
        store.import_conversation("bob", raw)
    assert store.list_conversations("bob") == before


def test_two_writers_at_once(store):
    cid = store.create_conversation("alice")
    errors = []

    def write(n):
        try:
            for i in range(20):
                store.append("alice", cid, Message("user", f"{n}-{i}"))
        except Exception as error:  # noqa: BLE001 - the test reports any failure
            errors.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(store.messages("alice", cid)) == 40


def test_sqlite_runs_in_wal_mode(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    with store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_titles_from_first_words():
    assert title_from("Recommend a science fiction film about space exploration please now ok") == \
        "Recommend a science fiction film about…"
    assert title_from("推荐一部关于太空探索的科幻电影。") == "推荐一部关于太空探索的科幻电影。"


def test_the_app_secret_is_made_once_and_shared(store):
    assert store.app_secret("owner-cookie") == store.app_secret("owner-cookie")
    assert len(store.app_secret("owner-cookie")) == 32 and store.app_secret("other") != store.app_secret("owner-cookie")


def test_an_answer_is_stored_once_and_totals_are_one_query(store):
    from atri.pricing import price_table

    cid = store.create_conversation("alice")
    store.append("alice", cid, Message("user", "hi"))
    first = answer("第一个回答", reasoning="第一段思考")
    store.append("alice", cid, first, price=price_table("").get("qwen3-max"))
    store.retire_from("alice", cid, 1)
    store.append("alice", cid, answer("第二个回答"), position=1, price=price_table("").get("qwen3-max"))
    with store.engine.connect() as connection:
        blobs = connection.execute(text("SELECT data FROM messages")).scalars().all()
    assert not any("第一个回答" in str(blob) or "qwen3-max\", \"usage" in str(blob) for blob in blobs)
    totals = store.usage_totals("alice")
    assert (totals.answers, totals.prompt_tokens, totals.completion_tokens) == (2, 74, 146)  # regenerated included
    assert totals.cost["CNY"] > 0
    assert store.usage_totals("bob").answers == 0


def test_a_conversation_is_read_again_only_when_it_changed(store):
    cid = store.create_conversation("alice", "t")
    store.append("alice", cid, Message("user", "hi"))
    first = store.snapshot("alice", cid)
    assert store.snapshot("alice", cid) is first, "unchanged: the kept copy"
    answer_id = store.append("alice", cid, answer("喵"))
    after_append = store.snapshot("alice", cid)
    assert [m.content for m in after_append.messages] == ["hi", "喵"]
    store.retire_from("alice", cid, 1)
    assert [m.content for m in store.snapshot("alice", cid).messages] == ["hi"]
    store.show_variant("alice", answer_id, 0)
    store.rename("alice", cid, "new title")
    assert store.snapshot("alice", cid).info.title == "new title"
    other = Store(str(store.engine.url.render_as_string(hide_password=False)))  # another replica writes
    other.append("alice", cid, Message("user", "from elsewhere"))
    assert store.snapshot("alice", cid).messages[-1].content == "from elsewhere"


def test_a_changed_conversation_reads_again_only_the_rows_written_since(store):
    cid = store.create_conversation("alice", "long")
    for turn in range(50):
        store.append("alice", cid, Message("user", f"q{turn}"))
        store.append("alice", cid, answer(f"a{turn}"))
    before = store.snapshot("alice", cid)
    streaming = answer("")
    streaming.facts.error_kind = STREAMING
    store.append("alice", cid, Message("user", "next"))
    streaming.id = store.append("alice", cid, streaming)
    statements: list[str] = []
    listen = lambda *args: statements.append(args[2])  # noqa: E731  (conn, cursor, statement, …)
    event.listen(store.engine, "before_cursor_execute", listen)
    try:
        during = store.snapshot("alice", cid)
        streaming.content = "half"
        store.save("alice", streaming)
        later = store.snapshot("alice", cid)
    finally:
        event.remove(store.engine, "before_cursor_execute", listen)
    assert during.messages[0] is before.messages[0], "an old message is not read or validated again"
    assert [m.content for m in later.messages[-3:]] == ["a49", "next", "half"]
    assert later.messages[-1].facts.error_kind == STREAMING
    full_reads = [s for s in statements if "messages.data" in s and "messages.conversation_id = " in s
                  and " IN " not in s.upper()]
    assert not full_reads, "no read of every row of the conversation"


def test_a_kept_conversation_follows_this_process_appends_and_another_writer(tmp_path):
    """Messages this process adds are put into the conversation it keeps in memory; a write by another
    process (a second replica) in between makes the next read go to the database again."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    here, there = Store(url), Store(url)

    def drawn(store: Store, cid: str) -> list[tuple[str, str, int, int]]:
        return [(item.message.role, item.message.content, item.variant, item.variants)
                for item in store.snapshot("alice", cid).thread]

    cid = here.create_conversation("alice", "kept")
    here.append("alice", cid, Message("user", "one"))
    assert drawn(here, cid) == [("user", "one", 1, 1)]
    here.append("alice", cid, Message("assistant", "two"))
    there.append("alice", cid, Message("user", "three"))
    question = Message("user", "four")
    question.id = here.append("alice", cid, question)
    question.content = "changed by the caller afterwards"
    expected = [("user", "one", 1, 1), ("assistant", "two", 1, 1), ("user", "three", 1, 1), ("user", "four", 1, 1)]
    assert drawn(here, cid) == expected == drawn(Store(url), cid)
    here.append("alice", cid, Message("assistant", "five"))
    assert drawn(here, cid)[-1] == ("assistant", "five", 1, 1)
    assert here.snapshot("alice", cid).by_id[question.id].content == "four"


def test_an_answer_carries_the_cost_it_was_stored_with_into_every_view(store):
    from atri.pricing import Price, Tier

    cid = store.create_conversation("alice")
    store.append("alice", cid, Message("user", "q"))
    facts = AnswerFacts(model="qwen-plus", finish_reason="stop", usage=Usage(1_000_000, 1_000_000))
    price = Price("CNY", (Tier(up_to=10**9, input=1.0, output=2.0),))  # per million tokens
    store.append("alice", cid, Message("assistant", "a", facts=facts), price=price)
    stored = store.messages("alice", cid)[-1].facts
    assert (stored.cost, stored.currency) == (pytest.approx(3.0), "CNY")
    assert store.usage_totals("alice").cost == {"CNY": pytest.approx(3.0)}
    copy_id = store.import_conversation("bob", json.dumps(store.export("alice", cid)))
    assert store.messages("bob", copy_id)[-1].facts.cost == pytest.approx(3.0), "an import keeps what it cost"
    assert store.usage_totals("bob").cost == {"CNY": pytest.approx(3.0)}


def test_the_list_puts_pinned_chats_first_and_pages_through_all_of_them(store):
    ids = [store.create_conversation("alice", f"chat {n}") for n in range(120)]
    assert store.pin("alice", ids[0], True) and not store.pin("bob", ids[1], True)
    pages = [store.list_conversations("alice", limit=50, offset=offset) for offset in (0, 50, 100)]
    listed = [info.id for page in pages for info in page]
    assert len(listed) == 120 and set(listed) == set(ids), "every chat reachable, none twice"
    assert listed[0] == ids[0] and pages[0][0].pinned, "the oldest chat, pinned, comes first"
    assert [len(page) for page in pages] == [50, 50, 20]


def test_documents_follow_the_branch_of_the_question_they_came_with(store):
    from atri.documents import Chunk

    cid = store.create_conversation("alice")
    first = store.append("alice", cid, Message("user", "read this"))
    store.add_document("alice", cid, "whole.txt", first, None, 10, [Chunk(None, "about cats", 0)])
    store.append("alice", cid, answer("ok"))
    second = store.append("alice", cid, Message("user", "and this"))
    store.add_document("alice", cid, "branch.txt", second, None, 20, [Chunk(None, "about dogs", 0)])
    store.append("alice", cid, answer("ok too"))

    def seen() -> list[str]:
        source = store.context_source("alice", cid)
        return sorted({chunk.text for chunk in source.document_chunks("e5")}) + [str(source.document_tokens())]

    assert seen() == ["about cats", "about dogs", "30"]
    store.retire_from("alice", cid, 2)  # the second question, edited: its documents stay with the edit
    store.append("alice", cid, Message("user", "and this, edited"), position=2)
    assert seen() == ["about cats", "about dogs", "30"]
    store.retire_from("alice", cid, 1)  # the first answer regenerated: the second question is on another branch
    store.append("alice", cid, answer("another ok"), position=1)
    assert seen() == ["about cats", "10"]


def test_a_deleted_question_takes_its_documents_and_a_summary_that_stood_for_it_and_waits_for_a_live_answer(store):
    from atri.context import Summary
    from atri.documents import Chunk

    cid = four_turns(store)
    question_2 = store.thread("alice", cid)[2].id
    store.add_document("alice", cid, "secret.txt", question_2, None, 10, [Chunk(None, "the launch code", 0)])
    store.save_summary("alice", cid, Summary("They talked about the launch code.", 6))
    store.append("alice", cid, Message("user", "question 5"))
    live = Message("assistant", "half", facts=AnswerFacts(model="qwen3-max", error_kind=STREAMING))
    live.id = store.append("alice", cid, live)
    assert store.delete_message("alice", question_2) == 0, "not while an answer below it is being written"
    live.content, live.facts = "whole", AnswerFacts(model="qwen3-max", finish_reason="stop")
    store.save("alice", live)

    assert store.delete_message("alice", question_2) == 8
    assert store.documents("alice", cid, "e5") == [], "its document went with it"
    assert store.conversation("alice", cid).summary is None, "the summary stood for a deleted message"
    store.save("alice", live)  # a writer that had not heard
    assert [m.content for m in store.messages("alice", cid)] == ["question 1", "answer 1"], "and stays gone"
