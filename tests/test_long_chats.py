"""Long chats stay cheap to draw: the recent messages at once, earlier ones on demand."""
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
    assert at.chat_message[0].markdown[0].value == "question 0"
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
