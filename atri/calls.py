"""Every request to a model goes out here: admitted, sent, followed into a Turn, charged, and retried.

One request is one `follow_request` (sync) or `afollow_request` (async): the same steps on either client.
Before anything is sent, a metered connection's quotas admit it (atri.quotas: its input counted, a reserve
held for its output; raises QuotaExceeded) and it goes out asking for no more output than that reserve.
However it ends (finished, failed, stopped, cancelled) the admission is then charged what the provider
reported, or an estimate, so no reserve is left held.

Built on it: `run_turn` / `arun_turn` (an answer: one request), `send` (the whole answer at once: titles and
summaries), `asend` (Batch and Extract: a throttled request waits as long as the provider's Retry-After says
and is asked again), and atri.tool_loop, which composes rounds of `follow_request` into one answer.

The wire format is a Transport, chosen per request at `transport_for`: Chat Completions (atri.client), or
DashScope's own protocol (atri.dashscope_native) for a web search, whose sources only that one returns.
Everything above it stays as it is: both yield chunks in Chat Completions' shape.
"""
from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from .client import CHAT_COMPLETIONS, Cancel
from .dashscope_native import DASHSCOPE_NATIVE, DASHSCOPE_SPEECH, searches_natively, speaks_natively
from .errors import ChatError
from .messages import Usage
from .metering import Admitted
from .pricing import Price
from .providers import ModelInfo
from .request import RequestPlan
from .settings import Connection
from .tokens import TokenCounter, rough_count
from .turn import Turn, TurnFollower, estimate_usage

__all__ = ["Target", "Transport", "Turn", "arun_turn", "asend", "estimate_usage", "follow_request",
           "afollow_request", "run_turn", "send", "transport_for"]

TRIES = 4  # our own tries of a throttled request; the SDK already retried each of them twice
MAX_WAIT_S = 60.0  # a Retry-After longer than this is not waited for in full
# 429s that recover by waiting ("rate increased too quickly", requests per minute). An exhausted
# allocation ("quota") does not, so it fails at once.
RECOVERABLE = ("rate_limit", "burst", "quota_requests")  # a demo's per-minute quota resets within the minute


@dataclass(frozen=True)
class Target:
    """Where requests go: the connection, the model's abilities, its price and token counter."""

    connection: Connection
    model: ModelInfo
    price: Price | None = None
    count: TokenCounter | None = None

    @property
    def label(self) -> str:
        return f"{self.connection.provider.id} · {self.model.id}"


class Transport(Protocol):
    """A wire format: sends a request and yields its chunks in Chat Completions' shape (atri.stream reads
    them), raising ChatError when it fails."""

    def stream(self, conn: Connection, kwargs: dict[str, Any], cancel: Cancel | None) -> Iterator[dict[str, Any]]: ...

    def astream(self, conn: Connection, kwargs: dict[str, Any]) -> AsyncIterator[dict[str, Any]]: ...


def transport_for(conn: Connection, kwargs: dict[str, Any]) -> Transport:
    """The wire format this request goes out in: DashScope's own protocol for a search that can go there (its
    sources come back only that way) and for its speech model, Chat Completions for everything else."""
    if speaks_natively(conn, kwargs):
        return DASHSCOPE_SPEECH
    return DASHSCOPE_NATIVE if searches_natively(conn, kwargs) else CHAT_COMPLETIONS


# --- one request: the steps both faces share ------------------------------------------------------------


def _admit(conn: Connection, follower: TurnFollower, kwargs: dict[str, Any], host_choice: bool) -> dict[str, Any]:
    """The request as it goes out, after its admission (raises QuotaExceeded, having sent nothing).
    `host_choice`: a request the host decided on (a title, a summary), not one of the visitor's requests."""
    admission: Admitted | None = None
    if conn.meter is not None:
        model = conn.provider.model(kwargs["model"])
        admission = conn.meter.admit_request(kwargs, model, follower.count, host_choice=host_choice)
        if admission is not None:
            kwargs = admission.limit(kwargs, model)
    follower.sending(admission, kwargs)
    return kwargs


def _spent(usage: Usage | None) -> int:
    return usage.prompt_tokens + usage.completion_tokens if usage else 0


def _settle(follower: TurnFollower) -> None:
    """Charge the latest request's admission what it used: the provider's usage for it, or an estimate
    (its input and the text that came back). Charged again later with a better figure replaces this one."""
    admission, turn = follower.admission, follower.turn
    if admission is None:
        return
    if turn.usage is not None and turn.usage is not turn.earlier_usage:
        used = _spent(turn.usage) - _spent(turn.earlier_usage)
    else:
        used = admission.input_tokens + rough_count(follower.round_text())
    admission.charge(max(0, used))


def follow_request(conn: Connection, follower: TurnFollower, kwargs: dict[str, Any], *, cancel: Cancel | None = None,
                   host_choice: bool = False) -> Iterator[Turn]:
    """One request: admitted, sent, each chunk fed to the follower (its Turn yielded), charged when it ends.
    Raises ChatError when it is refused, fails or is stopped."""
    sent = _admit(conn, follower, kwargs, host_choice)
    chunks = transport_for(conn, sent).stream(conn, sent, cancel)
    try:
        for chunk in chunks:
            yield follower.feed(chunk)
    finally:
        chunks.close()
        _settle(follower)


async def afollow_request(conn: Connection, follower: TurnFollower, kwargs: dict[str, Any], *,
                          host_choice: bool = False) -> AsyncIterator[Turn]:
    """follow_request on the async client: many requests can stream at once in one thread."""
    sent = _admit(conn, follower, kwargs, host_choice)
    try:
        async for chunk in transport_for(conn, sent).astream(conn, sent):
            yield follower.feed(chunk)
    finally:
        _settle(follower)


def _finished(follower: TurnFollower, error: ChatError | None) -> Turn:
    """The ended Turn of a one-request answer, charged again with its usage as estimated by the model's own
    counter when the provider sent none."""
    turn = follower.finish(error)
    _settle(follower)
    return turn


# --- answers ----------------------------------------------------------------------------------------------


def run_turn(conn: Connection, plan: RequestPlan, *, count: TokenCounter | None = None,
             context: dict[str, Any] | None = None, cancel: Cancel | None = None,
             host_choice: bool = False) -> Iterator[Turn]:
    """Yields the growing Turn after each chunk, and once more when it has ended (error or not)."""
    follower = TurnFollower(conn, plan, count, context)
    error = None
    try:
        yield from follow_request(conn, follower, plan.kwargs, cancel=cancel, host_choice=host_choice)
    except ChatError as failure:
        error = failure
    yield _finished(follower, error)


async def arun_turn(conn: Connection, plan: RequestPlan, *, count: TokenCounter | None = None,
                    host_choice: bool = False) -> AsyncIterator[Turn]:
    """The same, on the async client."""
    follower = TurnFollower(conn, plan, count, None)
    error = None
    try:
        async for turn in afollow_request(conn, follower, plan.kwargs, host_choice=host_choice):
            yield turn
    except ChatError as failure:
        error = failure
    yield _finished(follower, error)


def send(conn: Connection, plan: RequestPlan, *, count: TokenCounter | None = None, host_choice: bool = False) -> Turn:
    """The whole answer at once (streamed all the same: some models answer only that way)."""
    *_, turn = run_turn(conn, plan, count=count, host_choice=host_choice)
    return turn


# --- retried: Batch and Extract -----------------------------------------------------------------------------


class _Throttled(Exception):
    def __init__(self, turn: Turn) -> None:
        super().__init__(turn.error.kind if turn.error else "throttled")
        self.turn = turn


def _wait(state: RetryCallState) -> float:
    """As long as the provider asked (up to a minute), or a growing random pause when it did not say."""
    failure = state.outcome.exception() if state.outcome else None
    asked = failure.turn.error.retry_after_s if isinstance(failure, _Throttled) and failure.turn.error else None
    if asked is not None:
        return min(asked, MAX_WAIT_S)
    return wait_random_exponential(multiplier=1, max=30)(state)


@dataclass
class _Flight:
    """The requests one event loop is streaming on one meter (a run's rows, an extraction's sources)."""

    streaming: int = 0
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def end_one(self) -> None:
        self.streaming -= 1
        self.ended.set()
        self.ended = asyncio.Event()


_flights: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _Flight]] = weakref.WeakKeyDictionary()


def _flight(conn: Connection) -> _Flight:
    per_loop = _flights.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault(id(conn.meter), _Flight())


def _held_by_siblings(turn: Turn, flight: _Flight) -> bool:
    """Refused for tokens while other requests of this loop on the same meter are streaming: each holds a
    reserve for its output (atri.quotas), most of which comes back when it ends."""
    return (turn.error is not None and turn.error.kind in ("quota_tokens", "quota_budget") and not turn.content
            and flight.streaming > 0)


async def asend(conn: Connection, plan: RequestPlan, *, count: TokenCounter | None = None,
                on_turn: Callable[[Turn], None] = lambda turn: None,
                on_wait: Callable[[float], None] = lambda seconds: None) -> Turn:
    """One streamed answer for a batch row or an extraction. A throttled answer (a 429 that recovers, or a
    demo's per-minute quota) waits and is asked again, up to TRIES times; one refused for the tokens its
    siblings hold in reserve waits for one of them to end, and is asked again; any other failure comes back
    in `turn.error`."""
    flight = _flight(conn) if conn.meter is not None else None
    while True:
        if flight is not None:
            flight.streaming += 1
        try:
            turn = await _send_retrying(conn, plan, count, on_turn, on_wait)
        finally:
            if flight is not None:
                flight.end_one()
        if flight is None or not _held_by_siblings(turn, flight):
            return turn
        on_wait(0.0)
        await flight.ended.wait()


async def _send_retrying(conn: Connection, plan: RequestPlan, count: TokenCounter | None,
                         on_turn: Callable[[Turn], None], on_wait: Callable[[float], None]) -> Turn:
    retrying = AsyncRetrying(stop=stop_after_attempt(TRIES), wait=_wait, retry=retry_if_exception_type(_Throttled),
                             before_sleep=lambda state: on_wait(state.upcoming_sleep), reraise=True)
    try:
        async for attempt in retrying:
            with attempt:
                turn = None
                async for turn in arun_turn(conn, plan, count=count):
                    on_turn(turn)
                if turn.error is not None and turn.error.kind in RECOVERABLE and not turn.content:
                    raise _Throttled(turn)
                return turn
    except _Throttled as last:
        return last.turn
    raise AssertionError("unreachable: tenacity either returns, retries or re-raises")
