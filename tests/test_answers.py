"""The turn pipeline in the core (atri.answers), without Streamlit: the fake provider and a real SQLite store."""
import time
from dataclasses import replace

import pytest

from atri.answers import MAX_ANSWERS_PER_OWNER, Answerer, TooManyAnswers, TurnSetup
from atri.context import ContextSettings
from atri.messages import ChatOptions, Message
from atri.providers import catalogue
from atri.settings import Connection
from atri.store import STREAMING, Store
from atri.tokens import rough_count
from tests.fake_provider import GOOD_KEY

ANSWER_END = "several small pieces."


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'atri.db'}")


@pytest.fixture
def answerer(store):
    answerer = Answerer(store)
    yield answerer
    answerer.close()


def setup_for(fake, model: str = "qwen-plus", connected: bool = True) -> TurnSetup:
    provider = catalogue()["dashscope"]
    connection = Connection(provider, fake.base_url, GOOD_KEY) if connected else None
    return TurnSetup(ChatOptions("dashscope", model), connection, provider.model(model), rough_count, ContextSettings())


def ask(store, text: str, owner: str = "alice") -> str:
    cid = store.create_conversation(owner, text)
    store.append(owner, cid, Message("user", text))
    return cid


def wait_done(live, timeout_s: float = 20) -> None:
    assert live.done.wait(timeout_s), "the answer did not end"


def test_an_answer_is_written_by_a_worker_and_saved_whole(store, answerer, fake):
    cid = ask(store, "你好")
    live = answerer.start("alice", cid, setup_for(fake))
    phases = set()
    seen = -1
    while not live.done.is_set():
        seen = live.wait_for_change(seen, 1)
        phases.add(live.phase)
    answer = store.messages("alice", cid)[-1]
    assert ANSWER_END in answer.content and answer.facts.error_kind is None
    assert "streaming" in phases and len(fake.streamed) == 1
    assert not answerer.live("alice", cid).active, "once saved, pages draw it from the store"


def test_asking_again_while_it_is_written_attaches_instead_of_sending_a_second_request(store, answerer, fake):
    fake.chunk_delay_s = 0.1
    cid = ask(store, "once")
    first = answerer.start("alice", cid, setup_for(fake))
    second = answerer.start("alice", cid, setup_for(fake))
    assert second is first
    wait_done(first)
    assert len(fake.streamed) == 1


def test_while_written_it_is_stored_as_streaming_and_readable_elsewhere(store, answerer, fake):
    fake.chunk_delay_s = 0.2
    cid = ask(store, "slowly")
    live = answerer.start("alice", cid, setup_for(fake))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stored = store.messages("alice", cid)
        if len(stored) == 2 and stored[1].content:
            break
        time.sleep(0.05)
    assert stored[1].facts.error_kind == STREAMING and ANSWER_END not in stored[1].content
    wait_done(live)
    assert store.messages("alice", cid)[1].facts.error_kind is None


def test_stop_closes_the_provider_connection_and_keeps_what_arrived(store, answerer, fake):
    fake.chunk_delay_s = 0.3
    cid = ask(store, "stop me")
    live = answerer.start("alice", cid, setup_for(fake))
    while not (live.turn and live.turn.content):
        live.wait_for_change(live.version, 1)
    answerer.stop("bob", cid)  # someone else's stop does nothing
    assert not live.done.wait(0.5)
    answerer.stop("alice", cid)
    wait_done(live)
    answer = store.messages("alice", cid)[-1]
    assert answer.facts.error_kind == "stopped" and answer.content and ANSWER_END not in answer.content
    deadline = time.monotonic() + 5
    while fake.hangups == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.hangups == 1, "the provider saw the connection closed, so it stops generating too"


def test_one_visitor_can_have_a_few_answers_written_at_once_and_no_more(store, answerer, fake):
    fake.chunk_delay_s = 0.2
    lives = [answerer.start("alice", ask(store, f"q{i}"), setup_for(fake)) for i in range(MAX_ANSWERS_PER_OWNER)]
    with pytest.raises(TooManyAnswers):
        answerer.start("alice", ask(store, "one too many"), setup_for(fake))
    other = answerer.start("bob", ask(store, "mine", owner="bob"), setup_for(fake))
    assert len(answerer.answering("alice")) == MAX_ANSWERS_PER_OWNER
    for live in [*lives, other]:
        wait_done(live)
    assert answerer.answering("alice") == set()


def test_without_a_connection_the_answer_says_why(store, answerer, fake):
    cid = ask(store, "hi")
    wait_done(answerer.start("alice", cid, setup_for(fake, connected=False)))
    assert store.messages("alice", cid)[-1].facts.error_kind == "no_connection"


def test_the_first_answer_gets_a_title_from_the_model(store, answerer, fake):
    cid = ask(store, "Recommend a science fiction film about space exploration")
    wait_done(answerer.start("alice", cid, setup_for(fake), wants_title=True))
    deadline = time.monotonic() + 10
    while store.conversation("alice", cid).title.startswith("Recommend a science") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.conversation("alice", cid).title.startswith("Echo:")


def test_answers_a_dead_process_left_streaming_are_interrupted_at_start_up(store, fake):
    cid = ask(store, "left behind")
    from atri.messages import AnswerFacts

    store.append("alice", cid, Message("assistant", "half an ans", facts=AnswerFacts(model="qwen-plus",
                                                                                     error_kind=STREAMING)))
    assert store.messages("alice", cid)[-1].facts.error_kind == STREAMING
    Answerer(store).close()  # a new process starting
    assert store.messages("alice", cid)[-1].facts.error_kind == "interrupted"


def embedded_setup_for(fake) -> TurnSetup:
    """The fake provider flagged as the embedded model: its answers wait in the one-at-a-time line, and
    the fake counts exactly what reached it."""
    provider = replace(catalogue()["dashscope"], embedded=True)
    return TurnSetup(ChatOptions("dashscope", "qwen-plus"), Connection(provider, fake.base_url, GOOD_KEY),
                     provider.model("qwen-plus"), rough_count, ContextSettings())


def wait_until(live, ready, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert time.monotonic() < deadline, f"still {live.phase}"
        live.wait_for_change(live.version, 0.2)


def test_on_the_embedded_model_answers_take_turns_and_a_stop_in_line_sends_nothing(store, answerer, fake):
    fake.chunk_delay_s = 0.2
    setup = embedded_setup_for(fake)
    first = answerer.start("alice", ask(store, "first"), setup)
    wait_until(first, lambda: first.phase == "streaming")
    second = answerer.start("bob", ask(store, "second", owner="bob"), setup)
    wait_until(second, lambda: second.phase == "queued")
    third_cid = ask(store, "third", owner="carol")
    third = answerer.start("carol", third_cid, setup)
    wait_until(third, lambda: third.phase == "queued")
    assert (second.queue_position, third.queue_position) == (1, 2) and first.phase == "streaming"
    answerer.stop("carol", third_cid)
    wait_done(third)
    stopped = store.messages("carol", third_cid)[-1]
    assert stopped.role == "assistant" and stopped.facts.error_kind == "stopped" and not stopped.content
    wait_done(first)
    wait_done(second)
    assert second.turn.content and second.turn.error is None
    assert len(fake.streamed) == 2, "the answer stopped in line never reached the model"
    assert second.turn.started >= first.turn.ended_at, "one answer at a time"


def test_the_page_waits_until_the_request_is_out_not_for_its_answer_nor_its_place_in_line(store, answerer, fake):
    fake.first_token_delay_s = 2.0
    setup = embedded_setup_for(fake)
    first = answerer.start("alice", ask(store, "first"), setup)
    began = time.monotonic()
    first.wait_until_asked(5)
    assert time.monotonic() - began < 1.5 and first.phase == "asking", "returned when the request went out"
    second = answerer.start("bob", ask(store, "second", owner="bob"), setup)
    began = time.monotonic()
    second.wait_until_asked(5)
    assert time.monotonic() - began < 1.5 and second.phase == "queued", "a place in line ends the wait too"
    wait_done(first)
    wait_done(second)
    assert len(fake.streamed) == 2
