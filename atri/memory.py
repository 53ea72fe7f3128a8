"""The model and store work behind the context strategies: writing summaries, embedding turns."""
from __future__ import annotations

from typing import Any

from .context import Summary, summary_messages
from .errors import ChatError
from .messages import Message
from .providers import ModelInfo, Thinking
from .recall import Embedder, Memory, turns_to_embed
from .request import RequestPlan
from .settings import Connection
from .turn import run_turn

SUMMARY_MAX_TOKENS = 400


def summary_request(model: ModelInfo, thread: list[Message], due: tuple[int, int], previous: Summary | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"model": model.id, "messages": summary_messages(thread, *due, previous),
                              "max_tokens": SUMMARY_MAX_TOKENS, "temperature": 0.2, "stream": True}
    if model.thinking == Thinking.HYBRID:
        kwargs["extra_body"] = {"enable_thinking": False}  # a summary needs no reasoning
    return kwargs


def write_summary(conn: Connection, model: ModelInfo, thread: list[Message], due: tuple[int, int],
                  previous: Summary | None) -> str:
    """Fold thread[due] (and the previous summary) into a new summary; raises ChatError on failure."""
    *_, turn = run_turn(conn, RequestPlan(summary_request(model, thread, due, previous)))
    if turn.error or not turn.content.strip():
        raise turn.error or ChatError("unknown", "empty summary")
    return turn.content.strip()


def new_memories(thread: list[Message], known: set[str], embedder: Embedder) -> list[Memory]:
    todo = turns_to_embed(thread, known)
    if not todo:
        return []
    vectors = embedder.passages([text for _, text in todo])
    return [Memory(key, text, vector) for (key, text), vector in zip(todo, vectors)]
