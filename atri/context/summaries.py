"""Rolling summaries: the older half of a long conversation folded into a few lines by the model."""
from __future__ import annotations

from typing import Any

from ..calls import send
from ..errors import ChatError
from ..messages import Message
from ..providers import ModelInfo, Provider
from ..request import Call, RequestPlan, build_call
from ..settings import Connection
from .plan import Summary, summary_messages

SUMMARY_MAX_TOKENS = 400


def summary_request(model: ModelInfo, provider: Provider, thread: list[Message], due: tuple[int, int],
                    previous: Summary | None) -> dict[str, Any]:
    """A summary needs no reasoning: thinking off (said explicitly to hybrid models)."""
    call = Call(summary_messages(thread, *due, previous), max_tokens=SUMMARY_MAX_TOKENS, temperature=0.2)
    return build_call(call, model, provider)


def write_summary(conn: Connection, model: ModelInfo, thread: list[Message], due: tuple[int, int],
                  previous: Summary | None) -> str:
    """Fold thread[due] (and the previous summary) into a new summary; raises ChatError on failure. The
    host's choice, not the visitor's: it counts toward their tokens and the budget, not their requests."""
    turn = send(conn, RequestPlan(summary_request(model, conn.provider, thread, due, previous)), host_choice=True)
    if turn.error or not turn.content.strip():
        raise turn.error or ChatError("unknown", "empty summary")
    return turn.content.strip()
