"""The sidebar's list of chats (issue 30), driven through AppTest: grouped by day with pinned ones on top, each
chat's ⋯ menu, and every chat reachable however many there are."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import update

from atri.store.rows import ConversationRow
from tests.test_app import bubbles, send
from tests.test_conversations import conversation_buttons, open_menu

HEADINGS = {"Pinned", "Today", "Yesterday", "Previous 7 days", "Older", "置顶", "今天", "昨天", "过去 7 天", "更早"}


def _walk(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _walk(child)


def groups(at) -> list[tuple[str, list[str]]]:
    """The sidebar's list as a reader sees it: each heading, and the titles under it."""
    shown: list[tuple[str, list[str]]] = []
    for node in _walk(at.sidebar):
        if node.type == "caption" and node.value in HEADINGS:
            shown.append((node.value, []))
        elif node.type == "button" and (node.key or "").startswith("conversation::"):
            shown[-1][1].append(node.label)
    return shown


def make_chats(at, titles: list[str]) -> list[str]:
    """Chats of this visitor, the last one newest; written by another tab, say. The page is run again."""
    from atri.ui.config import get_store

    owner = at.session_state["owner"]
    ids = [get_store().create_conversation(owner, title) for title in titles]
    at.run()
    return ids


def written(cid: str, when: datetime) -> None:
    from atri.ui.config import get_store

    with get_store().engine.begin() as connection:
        connection.execute(update(ConversationRow).where(ConversationRow.id == cid).values(updated_at=when))


def test_chats_are_grouped_by_day_newest_first_and_a_pinned_one_goes_on_top(app):
    alpha, beta, gamma, delta = make_chats(app, ["alpha", "beta", "gamma", "delta"])
    now = datetime.now(timezone.utc)
    written(alpha, now - timedelta(days=40))
    written(beta, now - timedelta(days=3))
    app.run()
    assert groups(app)[0] == ("Today", ["delta", "gamma"])
    assert [heading for heading, _ in groups(app)][-2:] == ["Previous 7 days", "Older"]
    assert "Pinned" not in dict(groups(app)), "no heading over an empty group"

    open_menu(app, alpha)
    app.button(key=f"pin::{alpha}").click().run()
    assert groups(app)[0] == ("Pinned", ["alpha"])
    assert dict(groups(app))["Today"] == ["delta", "gamma"]
    assert "Older" not in dict(groups(app))
    assert not [i for i in app.text_input if i.key == f"rename_text::{alpha}"], "the menu closed once pinned"

    open_menu(app, alpha)
    assert app.button(key=f"pin::{alpha}").label == "Unpin"
    app.button(key=f"pin::{alpha}").click().run()
    assert groups(app)[-1] == ("Older", ["alpha"])


def test_another_chat_is_renamed_and_deleted_from_its_menu_and_the_open_one_stays_open(app):
    send(app, "keep me open")
    open_cid = app.query_params["c"]
    [other] = make_chats(app, ["an old plan"])

    open_menu(app, other)
    app.text_input(key=f"rename_text::{other}").set_value("Trip to Hangzhou").run()
    app.button(key=f"rename::{other}").click().run()
    assert app.button(key=f"conversation::{other}").label == "Trip to Hangzhou"

    open_menu(app, other)
    app.button(key=f"delete::{other}").click().run()
    assert "Trip to Hangzhou" in app.warning[0].value and "cannot be undone" in app.warning[0].value
    app.button(key=f"delete_yes::{other}").click().run()
    assert [b.key.split("::")[1] for b in conversation_buttons(app)] == [open_cid]
    assert app.query_params["c"] == open_cid
    assert bubbles(app)[0] == ("user", "keep me open")


def test_deleting_the_open_chat_from_its_menu_leaves_an_empty_page(app):
    send(app, "forget this")
    cid = app.query_params["c"]
    open_menu(app, cid)
    app.button(key=f"delete::{cid}").click().run()
    app.button(key=f"delete_no::{cid}").click().run()
    assert bubbles(app), "cancel keeps it"
    app.button(key=f"delete::{cid}").click().run()
    app.button(key=f"delete_yes::{cid}").click().run()
    assert not conversation_buttons(app) and not app.chat_message


def test_a_hundred_and_twenty_chats_are_all_reachable_with_show_more(app):
    made = make_chats(app, [f"chat {n:03}" for n in range(120)])
    listed = [b.key.split("::")[1] for b in conversation_buttons(app)]
    assert listed == made[::-1][:50], "the newest fifty first"
    app.button(key="list_more").click().run()
    assert len(conversation_buttons(app)) == 100
    app.button(key="list_more").click().run()
    assert {b.key.split("::")[1] for b in conversation_buttons(app)} == set(made)
    assert not [b for b in app.button if b.key == "list_more"], "nothing more to show"

    app.text_input(key="conversation_search").set_value("chat 0").run()
    assert len(conversation_buttons(app)) == 50, "a new search starts again from its first page"
    assert [b for b in app.button if b.key == "list_more"]


def test_headings_are_in_chinese_for_a_chinese_visitor(app):
    app.session_state["lang"] = "zh"
    [cid] = make_chats(app, ["旧对话"])
    written(cid, datetime.now(timezone.utc) - timedelta(days=30))
    make_chats(app, ["新对话"])
    assert groups(app) == [("今天", ["新对话"]), ("更早", ["旧对话"])]
