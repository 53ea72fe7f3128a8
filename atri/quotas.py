"""What visitors of a shared demo may spend: requests per minute and tokens per day for each visitor (and
each client address, so that clearing cookies does not start over), and one daily token budget for
everything the host's keys spend. Unset limits are unlimited, as on a laptop.

Counted in the database (atri.store keeps the counters) so that tabs and replicas share them: `admit`
takes one request, its estimated input and a reserve for its largest possible output from every counter it
falls under, atomically, or refuses with the moment the limit resets; the request then goes out asking for no
more output than it reserved (atri.request.cap_output, applied by atri.calls), so however long the answer
wants to be and however many requests race, the tokens spent stay inside what was left. `Admission.charge`
sets the reservation right with the real usage afterwards, giving back what was not used. Requests the host
chooses to send (titles, summaries) count toward tokens and the budget, not toward a visitor's requests per
minute. A visitor's own key is charged to no token quota, only to the request rate that protects the server.
No Streamlit here.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .errors import ChatError
from .providers import ModelInfo
from .request import OutputNeed, cap_output, output_need
from .settings import QuotaLimits
from .store import CounterClaim, Store
from .tokens import TOKENS_PER_MESSAGE, TOKENS_PER_REPLY, TokenCounter, message_text, schema_tokens

MINUTE_S = 60
DAY_S = 24 * 3600
KEEP_PERIODS_S = 2 * DAY_S  # counters older than this are dropped
BUDGET_SCOPE = "budget"
CLAIM_TRIES = 8  # another request took tokens between our look and our claim: look again, this many times


class Key(Enum):
    """Whose key a request spends."""

    HOST = "host"
    OWN = "own"  # the visitor's own, typed in the sidebar: only the request rate counts
    EMBEDDED = "embedded"  # the host's machine, no key: the visitor's quotas count, not the host's budget


@dataclass(frozen=True)
class Payer:
    owner: str
    address: str | None  # the client's IP address, when it is known
    key: Key = Key.HOST


@dataclass(frozen=True)
class Counter:
    """One limit as the visitor meets it."""

    what: str  # "requests" | "tokens" | "budget"
    claim: CounterClaim
    resets_at: float  # seconds since the epoch

    @property
    def limit(self) -> int:
        return self.claim.max_requests if self.what == "requests" else self.claim.max_tokens  # type: ignore[return-value]


@dataclass(frozen=True)
class Standing:
    """What is spent and left under one limit, for the sidebar."""

    what: str
    used: int
    limit: int
    resets_at: float

    @property
    def left(self) -> int:
        return max(0, self.limit - self.used)


class QuotaExceeded(ChatError):
    """A limit would be passed: nothing was sent. `what` names the limit, `resets_at` when it resets."""

    def __init__(self, what: str, limit: int, resets_at: float) -> None:
        super().__init__(f"quota_{what}", f"{limit} {int(resets_at)}", retry_after_s=max(0.0, resets_at - time.time()))
        self.what, self.limit, self.resets_at = what, limit, resets_at


@dataclass(eq=False)
class Admission:
    """A request let through, holding `estimated_tokens` (its input and, when it has a token limit, a reserve
    of `output_tokens` for what it may produce). charge() sets what it holds to the real usage once known (it
    may be called again with a better figure: each call replaces the last)."""

    store: Store
    token_counters: tuple[tuple[str, int], ...]
    estimated_tokens: int
    input_tokens: int = 0
    output_tokens: int | None = None  # the most output it may ask for; None: no token limit, ask as you like
    lowered: bool = False  # what is left made output_tokens smaller than the request wanted
    _held: int = field(init=False, repr=False)  # what its counters hold for it now
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._held = self.estimated_tokens

    def charge(self, used_tokens: int) -> None:
        with self._lock:
            change, self._held = used_tokens - self._held, used_tokens
        self.store.add_counter_tokens(list(self.token_counters), change)

    def limit(self, kwargs: dict[str, Any], model: ModelInfo) -> dict[str, Any]:
        """The request asking for no more output than was reserved for it."""
        return kwargs if self.output_tokens is None else cap_output(kwargs, model, self.output_tokens)


class Quotas:
    def __init__(self, store: Store, limits: QuotaLimits) -> None:
        self.store, self.limits = store, limits
        self._forgotten_before = 0

    def counters(self, payer: Payer, at: float | None = None, requests: bool = True) -> list[Counter]:
        """The counters a request falls under; `requests=False`: not the requests per minute (the host's calls)."""
        at = time.time() if at is None else at
        minute, day = int(at // MINUTE_S * MINUTE_S), int(at // DAY_S * DAY_S)
        who = [f"owner:{payer.owner}"] + ([f"ip:{payer.address}"] if payer.address else [])
        counters = []
        if self.limits.requests_per_minute and requests:
            counters += [Counter("requests", CounterClaim(f"rpm:{name}", minute, max_requests=self.limits.requests_per_minute),
                                 minute + MINUTE_S) for name in who]
        if self.limits.tokens_per_day and payer.key is not Key.OWN:
            counters += [Counter("tokens", CounterClaim(f"tpd:{name}", day, max_tokens=self.limits.tokens_per_day),
                                 day + DAY_S) for name in who]
        if self.limits.budget_tokens_per_day and payer.key is Key.HOST:
            counters.append(Counter("budget", CounterClaim(BUDGET_SCOPE, day, max_tokens=self.limits.budget_tokens_per_day),
                                    day + DAY_S))
        return counters

    def admit(self, payer: Payer, estimated_tokens: int, output: OutputNeed | None = None, *,
              host_choice: bool = False) -> Admission | None:
        """Take one request, its estimated input and (given `output`) a reserve for its output from every
        counter, or raise QuotaExceeded having taken none. The reserve is what the request wants, or what is
        left under the tightest token limit if that is less; refused when what is left is less than
        `output.least`. `host_choice`: a call the host decided on (a title, a summary): not counted as one of
        the visitor's requests."""
        counters = self.counters(payer, requests=not host_choice)
        if not counters:
            return None
        token_limits = [c for c in counters if c.claim.max_tokens is not None]
        for _ in range(CLAIM_TRIES):
            reserve = self._reserve(token_limits, estimated_tokens, output)
            refused = self.store.claim_counters([c.claim for c in counters], estimated_tokens + (reserve or 0))
            if refused is None:
                break
            counter = next(c for c in counters if c.claim == refused)
            if counter.what == "requests" or output is None:
                raise QuotaExceeded(counter.what, counter.limit, counter.resets_at)
        else:  # raced out every time: the tokens are going fast, and this request waits like any refused one
            raise QuotaExceeded(counter.what, counter.limit, counter.resets_at)
        self._forget_old(counters[0].claim.period)
        token_counters = tuple((c.claim.scope, c.claim.period) for c in token_limits)
        lowered = reserve is not None and output is not None and reserve < output.wanted
        return Admission(self.store, token_counters, estimated_tokens + (reserve or 0), estimated_tokens, reserve, lowered)

    def _reserve(self, token_limits: list[Counter], input_tokens: int, output: OutputNeed | None) -> int | None:
        """The output to hold for a request: None when there is no token limit (or no output asked about)."""
        if output is None or not token_limits:
            return None
        spent = self.store.counters([(c.claim.scope, c.claim.period) for c in token_limits])
        room = {c: c.limit - spent.get((c.claim.scope, c.claim.period), (0, 0))[1] - input_tokens for c in token_limits}
        tightest = min(token_limits, key=lambda c: room[c])
        if room[tightest] < output.least:
            raise QuotaExceeded(tightest.what, tightest.limit, tightest.resets_at)
        return min(output.wanted, room[tightest])

    def standing(self, payer: Payer) -> list[Standing]:
        """The visitor's own limits (the tightest of visitor and address), and the host's budget."""
        counters = self.counters(payer)
        spent = self.store.counters([(c.claim.scope, c.claim.period) for c in counters])
        tightest: dict[str, Standing] = {}
        for counter in counters:
            requests, tokens = spent.get((counter.claim.scope, counter.claim.period), (0, 0))
            standing = Standing(counter.what, requests if counter.what == "requests" else tokens, counter.limit,
                                counter.resets_at)
            if counter.what not in tightest or standing.left < tightest[counter.what].left:
                tightest[counter.what] = standing
        return list(tightest.values())

    def _forget_old(self, period: int) -> None:
        cutoff = period - KEEP_PERIODS_S
        if cutoff - self._forgotten_before >= DAY_S // 4:  # a few times a day is plenty
            self.store.forget_counters(cutoff)
            self._forgotten_before = cutoff


@dataclass(frozen=True)
class Meter:
    """A payer's quotas, carried by a Connection so that every request on it (answers, tool rounds, titles,
    summaries, Compare, Batch, Extract) is admitted and charged in one place, atri.calls, which knows it as an
    atri.metering.RequestMeter."""

    quotas: Quotas
    payer: Payer

    def admit(self, estimated_tokens: int, output: OutputNeed | None = None, *,
              host_choice: bool = False) -> Admission | None:
        return self.quotas.admit(self.payer, estimated_tokens, output, host_choice=host_choice)

    def admit_request(self, kwargs: dict[str, Any], model: ModelInfo, count: TokenCounter, *,
                      host_choice: bool = False) -> Admission | None:
        """Admit a request about to be sent: its input counted, its output reserved (atri.calls sends it
        asking for no more than that)."""
        return self.admit(input_estimate(kwargs, count), output_need(kwargs, model), host_choice=host_choice)


def input_estimate(kwargs: dict[str, Any], count: TokenCounter) -> int:
    """A request's input as providers bill it, estimated: each message's text, the calls an assistant message
    made (a tool loop's later rounds carry them, with no text), and the tool schemas it offers."""
    messages = kwargs.get("messages") or []
    tokens = TOKENS_PER_REPLY + sum(TOKENS_PER_MESSAGE + count(message_text(m.get("content") or "")) for m in messages)
    tokens += sum(count(json.dumps(m["tool_calls"], ensure_ascii=False)) for m in messages if m.get("tool_calls"))
    return tokens + schema_tokens(kwargs.get("tools"), count)
