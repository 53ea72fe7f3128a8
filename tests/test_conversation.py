"""What may be done with a conversation, decided without a page (atri/conversation.py): on a real store."""
from __future__ import annotations

import pytest

from atri.answers import LiveAnswer
from atri.conversation import SendGuard, TooLong, busy, can_act_on, save_question, send_refusal, settled
from atri.documents import Upload
from atri.messages import AnswerFacts, Message
from atri.quotas import Standing
from atri.store import STREAMING, Store


@pytest.fixture
def chat(tmp_path) -> tuple[Store, str]:
    store = Store(f"sqlite:///{tmp_path / 'atri.db'}")
    cid, _ = save_question(store, "alice", None, Message("user", "What is a monad?"))
    store.append("alice", cid, Message("assistant", "A monoid in the category of endofunctors.",
                                       facts=AnswerFacts(model="qwen-plus", finish_reason="stop")))
    return store, cid


def test_a_first_question_opens_a_chat_titled_after_it(chat):
    store, cid = chat
    assert store.conversation("alice", cid).title == "What is a monad?"
    assert [item.message.role for item in store.snapshot("alice", cid).thread] == ["user", "assistant"]


def test_a_question_goes_into_the_open_chat_and_never_into_someone_elses(chat):
    store, cid = chat
    same, made = save_question(store, "alice", cid, Message("user", "And a functor?"))
    assert (same, made) == (cid, False)
    theirs, made = save_question(store, "mallory", cid, Message("user", "let me in"))
    assert made and theirs != cid
    assert len(store.snapshot("alice", cid).thread) == 3


def test_a_chat_opened_with_only_a_document_is_named_after_it(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'atri.db'}")
    cid, _ = save_question(store, "alice", None, Message("user", ""), documents=(Upload("report 2026.pdf", b"%PDF"),))
    assert store.conversation("alice", cid).title == "📄 report 2026.pdf"


def test_buttons_act_only_on_messages_still_shown_and_never_while_an_answer_is_written(chat):
    store, cid = chat
    view = store.snapshot("alice", cid)
    question, answer = view.thread
    assert can_act_on(view, None, answer.id)
    store.retire_from("alice", cid, question.position)  # edited: the old question and answer are a variant now
    assert not can_act_on(store.snapshot("alice", cid), None, answer.id)

    live = LiveAnswer("alice", cid)  # an answer this process is writing
    assert not can_act_on(view, live, answer.id)
    live.done.set()
    assert can_act_on(view, live, answer.id)


def test_an_answer_saved_as_it_grows_is_busy_and_left_out_of_the_settled_thread(chat):
    store, cid = chat
    store.append("alice", cid, Message("user", "Go on"))
    store.append("alice", cid, Message("assistant", "Half an ans", facts=AnswerFacts(model="qwen-plus",
                                                                                     error_kind=STREAMING)))
    view = store.snapshot("alice", cid)
    assert busy(view)
    assert not can_act_on(view, None, view.thread[0].id)
    assert [item.message.content for item in settled(view.thread, LiveAnswer("alice", cid))][-1] == "Go on"
    assert not busy(store.snapshot("alice", save_question(store, "alice", None, Message("user", "hi"))[0]))


def test_a_question_over_the_models_window_or_under_a_used_up_limit_is_refused_before_it_is_saved():
    used_up = Standing("requests", 10, 10, resets_at=1_000.0)
    guard = SendGuard("qwen-plus", 8, count=lambda text: len(text.split()), quota_refusal=used_up)
    assert send_refusal(guard, "hello", at=999.0) == used_up
    assert send_refusal(guard, "hello", at=1_001.0) is None  # the limit has reset since the page drew
    assert send_refusal(guard, "word " * 9, at=1_001.0) == TooLong(9, 8, "qwen-plus")
    assert send_refusal(None, "word " * 10_000) is None  # no page run has drawn the sidebar yet


def test_links_written_in_a_question_are_found_in_chinese_text_each_once_and_no_more_than_the_limit():
    from atri.conversation import image_links, video_link

    question = "看看这张https://e.com/cat.PNG，还有 https://e.com/cat.PNG 和 https://e.com/page.html 与 (https://e.com/b.jpg)"
    assert image_links(question, 16) == ["https://e.com/cat.PNG", "https://e.com/b.jpg"]
    assert video_link("这段视频：https://e.com/clip.mp4。") == "https://e.com/clip.mp4"
    assert video_link(question) is None
    flood = " ".join(f"https://e.com/{n}.png" for n in range(200_000))  # a visitor's 4 MB of picture links
    assert image_links(flood, 16) == [f"https://e.com/{n}.png" for n in range(16)], "at most the limit"
