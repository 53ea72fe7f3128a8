"""What visitors of a shared demo may spend: requests per minute and tokens per day for each visitor (and
each client address, so that clearing cookies does not start over), and one daily token budget for
everything the host's keys spend. Unset limits are unlimited, as on a laptop.

Counted in the database (atri.store keeps the counters) so that tabs and replicas share them: `admit`
takes one request and the request's estimated input from every counter it falls under, atomically, or
refuses with the moment the limit resets; `Admission.charge` sets the estimate right with the real usage
afterwards. A visitor's own key is charged to no token quota, only to the request rate that protects the
server. No Streamlit here.
"""
from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from enum import Enum

from .errors import ChatError
from .settings import QuotaLimits
from .store import CounterClaim, Store

MINUTE_S = 60
DAY_S = 24 * 3600
KEEP_PERIODS_S = 2 * DAY_S  # counters older than this are dropped
BUDGET_SCOPE = "budget"


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


@dataclass(frozen=True)
class Admission:
    """A request let through; charge() corrects its token counters once the real usage is known."""

    store: Store
    token_counters: tuple[tuple[str, int], ...]
    estimated_tokens: int

    def charge(self, used_tokens: int) -> None:
        self.store.add_counter_tokens(list(self.token_counters), used_tokens - self.estimated_tokens)


class Quotas:
    def __init__(self, store: Store, limits: QuotaLimits) -> None:
        self.store, self.limits = store, limits
        self._forgotten_before = 0

    def counters(self, payer: Payer, at: float | None = None) -> list[Counter]:
        at = time.time() if at is None else at
        minute, day = int(at // MINUTE_S * MINUTE_S), int(at // DAY_S * DAY_S)
        who = [f"owner:{payer.owner}"] + ([f"ip:{payer.address}"] if payer.address else [])
        counters = []
        if self.limits.requests_per_minute:
            counters += [Counter("requests", CounterClaim(f"rpm:{name}", minute, max_requests=self.limits.requests_per_minute),
                                 minute + MINUTE_S) for name in who]
        if self.limits.tokens_per_day and payer.key is not Key.OWN:
            counters += [Counter("tokens", CounterClaim(f"tpd:{name}", day, max_tokens=self.limits.tokens_per_day),
                                 day + DAY_S) for name in who]
        if self.limits.budget_tokens_per_day and payer.key is Key.HOST:
            counters.append(Counter("budget", CounterClaim(BUDGET_SCOPE, day, max_tokens=self.limits.budget_tokens_per_day),
                                    day + DAY_S))
        return counters

    def admit(self, payer: Payer, estimated_tokens: int) -> Admission | None:
        """Take one request and its estimate from every counter, or raise QuotaExceeded having taken none."""
        counters = self.counters(payer)
        if not counters:
            return None
        refused = self.store.claim_counters([c.claim for c in counters], estimated_tokens)
        if refused is not None:
            counter = next(c for c in counters if c.claim == refused)
            raise QuotaExceeded(counter.what, counter.limit, counter.resets_at)
        self._forget_old(counters[0].claim.period)
        token_counters = tuple((c.claim.scope, c.claim.period) for c in counters if c.claim.max_tokens is not None)
        return Admission(self.store, token_counters, estimated_tokens)

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
    """A payer's quotas, carried by a Connection so that every request on it (answers, titles, summaries,
    Compare, Batch, Extract) is admitted and charged in one place, atri.turn and atri.client."""

    quotas: Quotas
    payer: Payer

    def admit(self, estimated_tokens: int) -> Admission | None:
        return self.quotas.admit(self.payer, estimated_tokens)


def client_address(remote: str | None, forwarded_for: str | None, trusted_proxies: str) -> str | None:
    """The visitor's IP address: the connection's own, or, when that is a proxy the host trusts
    (ATRI_TRUSTED_PROXIES, addresses or networks separated by commas), the last address in
    X-Forwarded-For that is not one of those proxies. A header from anyone else is ignored: it is
    whatever the client wants it to be."""
    networks = []
    for item in trusted_proxies.split(","):
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            continue

    def trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in networks)

    if not remote or not trusted(remote) or not forwarded_for:
        return remote or None
    for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        if not trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return remote
    return remote
