"""A short title for a conversation, asked of the model in one cheap call (streamed, as every call is: models
that only stream get titles too)."""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from .calls import send
from .messages import Message
from .providers import ModelInfo, Provider, Thinking
from .request import Call, RequestPlan, build_call
from .settings import Connection

TITLE_PROMPT = ("Write a title of at most six words for the conversation below, in the language it is written in. "
                "Reply with the title only, no quotes.")
TITLE_MAX_TOKENS = 24
TITLE_TIMEOUT_S = 30.0
LABEL = re.compile(r"^(title|标题)\s*[:：]\s*", re.IGNORECASE)  # small models often write "Title: …"
QUOTES = "\"'“”「」《》*` "  # and Markdown emphasis, around the title or inside its punctuation
TRAILING = ",.;:，。、；："
KEPT_ENDING = re.compile(r"(?:\b\w\.){2,}$|\.\.\.$")  # U.S., D.C., "Wait for it..."


def title_request(model: ModelInfo, provider: Provider, question: str, answer: str) -> dict[str, Any] | None:
    """None when a title call is not cheap (always-thinking models would reason first)."""
    if model.thinking in (Thinking.ALWAYS, Thinking.HIDDEN):
        return None
    messages = [{"role": "system", "content": TITLE_PROMPT},
                {"role": "user", "content": f"User: {question[:500]}\nAssistant: {answer[:500]}"}]
    return build_call(Call(messages, max_tokens=TITLE_MAX_TOKENS, temperature=0.3), model, provider)


def clean_title(raw: str) -> str:
    """The reply's first line without quotes, Markdown, a "Title:" label or a trailing comma or full stop
    (a question mark stays: it is part of the title, as is the full stop of "U.S.")."""
    line = next((part for part in raw.strip().splitlines() if part.strip()), "")
    line = LABEL.sub("", line.strip().lstrip("#").strip(QUOTES)).strip(QUOTES)
    while line and line[-1] in TRAILING + QUOTES and not KEPT_ENDING.search(line):
        line = line[:-1]
    return line[:60]


def suggest_title(conn: Connection, model: ModelInfo, question: Message, answer: Message) -> str | None:
    """The host's choice, not the visitor's: it counts toward their tokens and the budget, not their requests."""
    kwargs = title_request(model, conn.provider, question.content, answer.content)
    if kwargs is None:
        return None
    turn = send(replace(conn, timeout_s=min(conn.timeout_s, TITLE_TIMEOUT_S)), RequestPlan(kwargs), host_choice=True)
    if turn.error is not None:
        return None
    return clean_title(turn.content) or None
