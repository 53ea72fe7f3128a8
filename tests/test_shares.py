"""Share links at the storage level (issue 30), on SQLite and PostgreSQL: a read-only copy at an unguessable
token, up to one answer if asked, revoked by its owner only, gone with its chat, continued by anyone in a
chat of their own."""
from atri.messages import Message
from tests.test_store import answer, four_turns


def test_a_share_is_a_copy_of_the_chat_as_shown_then(store):
    cid = four_turns(store)
    token = store.create_share("alice", cid)
    assert len(token) >= 32 and store.shared(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    store.append("alice", cid, Message("user", "asked after sharing"))
    shared = store.shared(token)
    assert [m.content for m in shared.messages] == [f"{kind} {n}" for n in range(1, 5) for kind in ("question", "answer")]
    assert all(m.facts is None or m.facts.request is None for m in shared.messages), "no raw request (system prompt)"
    assert shared.messages[1].facts.usage.completion_tokens == 73, "the answer's facts are kept"


def test_a_share_up_to_one_answer_stops_there(store):
    cid = four_turns(store)
    first_answer = store.thread("alice", cid)[1]
    token = store.create_share("alice", cid, first_answer.id)
    assert [m.content for m in store.shared(token).messages] == ["question 1", "answer 1"]
    assert store.create_share("alice", cid, 10**9) is None and store.create_share("bob", cid) is None


def test_only_the_owner_lists_and_revokes_and_a_revoked_share_shows_nothing(store):
    cid = four_turns(store)
    token = store.create_share("alice", cid)
    assert [share.token for share in store.shares("alice")] == [token] and store.shares("bob") == []
    assert not store.revoke_share("bob", token) and store.shared(token) is not None
    assert store.revoke_share("alice", token)
    assert store.shared(token) is None and store.shares("alice") == []


def test_deleting_the_chat_removes_its_shares(store):
    cid = four_turns(store)
    token = store.create_share("alice", cid)
    store.delete("alice", cid)
    assert store.shared(token) is None


def test_anyone_can_continue_a_share_in_a_chat_of_their_own(store):
    cid = store.create_conversation("alice", "猫的问题")
    store.append("alice", cid, Message("user", "猫为什么喜欢纸箱？"))
    store.append("alice", cid, answer("因为纸箱让它们有安全感。"))
    copy = store.continue_shared(store.create_share("alice", cid), "bob")
    assert [item.message.content for item in store.thread("bob", copy)] == ["猫为什么喜欢纸箱？", "因为纸箱让它们有安全感。"]
    assert store.list_conversations("bob")[0].title == "猫的问题"
    assert store.usage_totals("bob").prompt_tokens == 0, "what alice's answers used is not bob's"
    store.append("bob", copy, Message("user", "那狗呢？"))
    assert len(store.thread("alice", cid)) == 2, "alice's chat is untouched"


def shared_page(database_url, token, monkeypatch, share_links="gated"):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    monkeypatch.setenv("ATRI_DATABASE_URL", database_url)
    monkeypatch.setenv("ATRI_SHARE_LINKS", share_links)
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app_pages" / "5_Shared.py"), default_timeout=60)
    at.query_params["s"] = token
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_shared_page_shows_the_copy_read_only_and_nothing_once_revoked(database_url, monkeypatch):
    from atri.store import Store

    store = Store(database_url)
    cid = store.create_conversation("alice", "Cats and boxes")
    store.append("alice", cid, Message("user", "why do cats like __boxes__?"))
    store.append("alice", cid, answer("Because a box feels **safe**."))
    token = store.create_share("alice", cid)
    at = shared_page(database_url, token, monkeypatch)
    assert at.title[0].value == "Cats and boxes"
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    assert at.chat_message[0].text[0].value == "why do cats like __boxes__?", "the question as typed"
    assert "Because a box feels **safe**." in at.chat_message[1].markdown[0].value
    assert not at.chat_input and not at.sidebar.children, "read-only: no chat box, no settings"
    assert "no longer works" not in " ".join(i.value for i in at.info)
    assert "no longer works" in shared_page(database_url, token, monkeypatch, share_links="off").info[0].value
    store.revoke_share("alice", token)
    assert "no longer works" in shared_page(database_url, token, monkeypatch).info[0].value
