"""Long chats stay cheap to draw: the recent messages at once, earlier ones on demand."""
import time

from atri.messages import AnswerFacts, Message
from tests.conftest import new_app


def test_a_long_chat_opens_on_its_recent_messages_and_shows_earlier_ones_on_demand(app):
    from atri.ui.config import get_store

    store, owner = get_store(), app.session_state["owner"]
    cid = store.create_conversation(owner, "long")
    for turn in range(40):
        store.append(owner, cid, Message("user", f"question {turn}"))
        store.append(owner, cid, Message("assistant", f"answer {turn}", facts=AnswerFacts(model="m", finish_reason="stop")))
    at = new_app(owner=owner, conversation=cid)
    assert len(at.chat_message) == 30
    assert at.chat_message[-1].markdown[0].value == "answer 39"
    at.button(key="show_earlier").click().run()
    assert len(at.chat_message) == 80
    assert at.chat_message[0].text[0].value == "question 0"  # a question is shown as typed
    assert not any(b.key == "show_earlier" for b in at.button)


def test_the_conversation_list_marks_the_chats_still_answering(app, fake):
    from atri.ui.config import get_answerer, get_store
    from tests.test_answers import setup_for, wait_done

    store, owner = get_store(), app.session_state["owner"]
    busy = store.create_conversation(owner, "busy")
    store.append(owner, busy, Message("user", "take your time"))
    idle = store.create_conversation(owner, "idle")
    store.append(owner, idle, Message("user", "hello"))
    fake.chunk_delay_s = 0.3
    live = get_answerer().start(owner, busy, setup_for(fake))

    def marks(at) -> dict[str, str]:
        return {b.key.split("::")[1]: b.proto.icon for b in at.button if b.key.startswith("conversation::")}

    at = new_app(owner=owner, conversation=idle)
    assert marks(at) == {busy: ":material/progress_activity:", idle: ""}
    get_answerer().stop(owner, busy)
    wait_done(live)
    assert marks(at.run()) == {busy: "", idle: ""}


def test_an_answer_that_ends_before_the_page_reaches_it_is_still_shown(app, monkeypatch):
    """A fast provider and a long page: the answer this run started is saved before the run gets to
    drawing it. The page must read the conversation again, not leave the question unanswered."""
    import atri.ui.chat as chat
    from atri.ui.asking import conversation_id
    from atri.ui.config import get_answerer

    drawn = chat.show_history

    def slow_history(lang, view, live, documents):
        started = get_answerer().live(app.session_state["owner"], conversation_id())
        if started is not None:
            assert started.done.wait(20)
            while started.active:  # saved
                time.sleep(0.01)
        drawn(lang, view, live, documents)

    monkeypatch.setattr(chat, "show_history", slow_history)
    app.chat_input[0].set_value("a quick one").run(timeout=30)
    assert "Echo: a quick one" in app.chat_message[-1].markdown[0].value
