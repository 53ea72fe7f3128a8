"""Tools that ask first: a call the visitor approves or denies before it runs (issue 32).

A tool asks first when its MCP server marks it destructive (and not read-only), or when the host lists it under
"approve" in its MCP file (atri.mcp_config). The answer's worker, at such a call, sets it as the pending call and
waits; the visitor's decision, given through atri.answers.Answerer.decide (which checks whose answer it is), wakes
it. No decision within the timeout is a denial; Stop while waiting ends the answer. A denied call is not run: the
model reads a short sentence saying so, as the tool's result. No Streamlit here.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .client import Cancel
from .tools import MAX_ARGUMENT_CHARS, ToolCall, ToolStep

APPROVAL_TIMEOUT_S = 600.0  # a visitor who walked away: the call is denied after this, and the answer goes on
SHOWN_ARGUMENTS_CHARS = 4_000  # what the page shows of a call's arguments

Decision = Literal["approved", "denied", "timed_out", "stopped"]
Ask = Callable[["PendingCall"], Decision]


@dataclass(frozen=True)
class PendingCall:
    """A call waiting for the visitor: its id (so that a stale button cannot decide a later call), the tool's
    name as the model called it, the server it comes from, and its arguments as the model sent them."""

    id: str
    tool: str
    server: str
    arguments: str

    def shown_arguments(self) -> str:
        """The arguments as indented JSON when they parse, cut to SHOWN_ARGUMENTS_CHARS."""
        try:
            text = json.dumps(json.loads(self.arguments or "{}"), indent=2, ensure_ascii=False)
        except (json.JSONDecodeError, RecursionError):
            text = self.arguments
        if len(text) <= SHOWN_ARGUMENTS_CHARS:
            return text
        return f"{text[:SHOWN_ARGUMENTS_CHARS]}\n… ({len(text) - SHOWN_ARGUMENTS_CHARS:,} more characters)"


class Approvals:
    """The one call of an answer that waits for the visitor (calls are run one at a time)."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change  # called when a call starts or stops waiting (the page redraws)
        self._changed = threading.Condition()
        self._decision: Decision | None = None
        self.pending: PendingCall | None = None

    def ask(self, call: PendingCall, timeout_s: float, cancel: Cancel) -> Decision:
        """Wait for the visitor's decision on `call`: approved, denied, timed_out (no decision in time) or
        stopped (Stop came first)."""
        with self._changed:
            self.pending, self._decision = call, None
        self._on_change()
        cancel.on_cancel(self._wake)
        with self._changed:
            self._changed.wait_for(lambda: self._decision is not None or cancel.cancelled, timeout=timeout_s)
            decision = self._decision or ("stopped" if cancel.cancelled else "timed_out")
            self.pending = None
        self._on_change()
        return decision

    def decide(self, call_id: str, approve: bool) -> bool:
        """The visitor's decision on the call waiting now; False when `call_id` is not the one waiting."""
        with self._changed:
            if self.pending is None or self.pending.id != call_id or self._decision is not None:
                return False
            self._decision = "approved" if approve else "denied"
            self.pending = None  # from now on no page shows it as waiting, though the worker has yet to wake
            self._changed.notify_all()
        self._on_change()
        return True

    def _wake(self) -> None:
        with self._changed:
            self._changed.notify_all()


def declined_text(tool: str, decision: Decision) -> str:
    """What the model reads instead of the result of a call that was not run."""
    if decision == "timed_out":
        return f"The user did not answer in time whether to run {tool}, so it was not run."
    return f"The user declined to run {tool}."


def declined_step(call: ToolCall, decision: Decision, round_: int) -> ToolStep:
    """The step of a call that was not run, as stored and shown with the answer."""
    return ToolStep(call.id, call.name, call.arguments[:MAX_ARGUMENT_CHARS], result=declined_text(call.name, decision),
                    round=round_, declined="timed_out" if decision == "timed_out" else "denied")
