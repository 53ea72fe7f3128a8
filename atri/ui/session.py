"""Everything Atri keeps in a browser session, in one place and typed.

`session.pending = PendingAnswer(cid)` instead of loose `st.session_state["pending"]` strings spread over the
pages. Widget keys are named here too, so that code which sets a widget's value (restoring a conversation's
options, a persona's prompt) and the widget itself cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

import streamlit as st

from atri.answers import TurnSetup
from atri.conversation import Refusal, SendGuard
from atri.documents import Upload
from atri.messages import Message

T = TypeVar("T")


@dataclass(frozen=True)
class HeldQuestion:
    """A question not sent yet, with what came with it: typed while an answer was being written (sent when it
    ends), or held back for a choice (images for a model that cannot see)."""
    conversation: str | None
    message: Message
    documents: tuple[Upload, ...] = ()


@dataclass(frozen=True)
class PendingAnswer:
    """A question was just saved: the next run hands it to the answer workers."""
    conversation: str
    position: int | None = None  # set when regenerating or editing: the answer replaces that position
    documents: tuple[Upload, ...] = ()  # files attached to the question, read by the answer's worker


class _Field(Generic[T]):
    """One session value: read with its default when unset, written through to st.session_state."""

    def __init__(self, default: Callable[[], T]) -> None:
        self.default = default

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = name

    def __get__(self, session: Any, owner: type | None = None) -> T:
        if self.key not in st.session_state:
            st.session_state[self.key] = self.default()
        return st.session_state[self.key]

    def __set__(self, session: Any, value: T) -> None:
        st.session_state[self.key] = value


def _none() -> None:
    return None


class Session:
    pending: _Field[PendingAnswer | None] = _Field(_none)
    answer_setup: _Field[TurnSetup | None] = _Field(_none)  # the last run's choices, for the next question
    answers_refused: _Field[int | None] = _Field(_none)  # the limit a callback met: told by the next run
    history_drawn: _Field[tuple[str | None, int]] = _Field(lambda: (None, 0))  # the conversation, and how many of
    # its messages the last page run drew (a turn's own run draws the ones after)
    turn_shown: _Field[tuple[str | None, int, int]] = _Field(lambda: (None, 0, 0))  # the conversation, where in
    # it the messages the turn's last run showed below the history start, and how many (the question, the answer)
    turn_outdated: _Field[bool] = _Field(bool)  # this page run's history draws what the turn showed
    turn_box_at: _Field[int] = _Field(int)  # which of its two places the turn's box holds (chat.py, _turn_box)
    sidebar_drawn_for: _Field[tuple[object, ...] | None] = _Field(_none)  # what the last page run's sidebar showed
    editing: _Field[int | None] = _Field(_none)  # the question being edited
    deleting: _Field[int | None] = _Field(_none)  # the message whose delete asks first (what follows it goes too)
    needs_title: _Field[str | None] = _Field(_none)  # the new conversation whose first answer names it
    unsent_question: _Field[str | None] = _Field(_none)  # refused or not saved: shown to copy and send again
    unsent_reason: _Field[Refusal | None] = _Field(_none)  # why, when it was refused before saving (a used-up
    # limit is told with a countdown to its reset)
    held_question: _Field[HeldQuestion | None] = _Field(_none)  # refused for now, sent as it is by one click
    queued_question: _Field[HeldQuestion | None] = _Field(_none)  # typed while an answer was written
    send_guard: _Field[SendGuard | None] = _Field(_none)
    model_choices: _Field[tuple[str, list[str]] | None] = _Field(_none)  # the provider and the models its picker offers
    access_granted: _Field[str | None] = _Field(_none)  # the access token this session's password earned
    attachment_problems: _Field[list[tuple[str, dict[str, Any]]]] = _Field(list)
    import_result: _Field[tuple[str, str] | None] = _Field(_none)
    confirm_delete: _Field[str | None] = _Field(_none)
    list_pages: _Field[int] = _Field(lambda: 1)  # pages of the conversation list shown ("Show more" adds one)
    share_made: _Field[str | None] = _Field(_none)  # the token of the share this session just made
    answer_shared: _Field[tuple[int, str] | None] = _Field(_none)  # the answer last shared up to, and its token
    owner: _Field[str | None] = _Field(_none)
    owner_cookie_to_set: _Field[str | None] = _Field(_none)
    options_loaded_for: _Field[str | None] = _Field(_none)  # the conversation whose options the widgets show
    context_loaded_for: _Field[str | None] = _Field(_none)
    listed_models: _Field[dict[str, list[str]]] = _Field(dict)  # a provider's /models, fetched once
    history_start: _Field[dict[str, tuple[int, bool]]] = _Field(dict)  # per conversation: the first message drawn,
    # and whether the visitor asked for earlier ones
    reading_aloud: _Field[int | None] = _Field(_none)  # the answer whose speech plays under it
    readings: _Field[dict[int, bytes]] = _Field(dict)  # the speech of the answers read last (a WAV each)
    opened: _Field[set[str]] = _Field(set)  # folded parts (long texts, details, images) the visitor opened

    def open_part(self, key: str) -> None:
        self.opened = self.opened | {key}


session = Session()

# Widget keys. The chat's settings are drawn with persist_state="session": their values outlive the runs
# that do not draw them (a visit to another page, another provider's model list, a hidden field).
LANG = "lang"
PROVIDER = "provider"
TEMPERATURE = "temperature"
JSON_MODE = "json_mode"
PERSONA = "persona"
SYSTEM_PROMPT = "system_prompt"
COMPARE_PERSONA = "cmp_persona"  # Compare's own, apart from the chat's
THINKING_BUDGET = "thinking_budget"
CHAT_INPUT = "chat_input"
EDIT_TEXT = "edit_text"
IMPORT_FILE = "import_file"
CONTEXT_PREFIX = "ctx_"
ACCESS_PASSWORD = "access_password"
WEB_SEARCH_KEY = "tool::web_search"
SEND_AT_ONCE = "send_voice_at_once"  # the settings panel's switch: what was said is sent, not put in the box
READ_PAGES_KEY = "tool::read_pages"  # "search and read pages" (a provider's agent_max search)


def model_key(provider_id: str) -> str:
    return f"model::{provider_id}"


def custom_model_key(provider_id: str) -> str:
    return f"custom_model::{provider_id}"


def thinking_key(model_id: str) -> str:
    return f"thinking::{model_id}"


def visitor_key(provider_id: str) -> str:
    return f"visitor_key::{provider_id}"


def tool_key(name: str) -> str:
    return f"tool::{name}"


def mcp_key(server: str) -> str:
    return f"mcp::{server}"
