"""The access password's gate: guesses are counted per address and overall in the database (so tabs,
sessions and replicas share the count), and past a limit a guess is refused without being checked, until
the next minute. Nothing waits: a refusal costs one conditional UPDATE, not a sleeping script thread.
No Streamlit here.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from enum import Enum

from .quotas import KEEP_PERIODS_S
from .store import CounterClaim, Store

GUESSES_PER_MINUTE_PER_ADDRESS = 10
GUESSES_PER_MINUTE_OVERALL = 100
MINUTE_S = 60
FORGET_EVERY_S = 6 * 3600
UNKNOWN_ADDRESS = "local"  # visitors with no address to tell apart (on this machine, no proxy): one bucket


class Outcome(Enum):
    RIGHT = "right"
    WRONG = "wrong"
    WAIT = "wait"  # too many guesses: not checked


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    retry_at: float | None = None  # seconds since the epoch, when the limit met (or next met) resets
    by: str | None = None  # which limit a WAIT met: "address" | "everyone"
    left: int | None = None  # after a WRONG guess: how many more may come this minute


def same_password(typed: str, password: str) -> bool:
    """Compared in constant time (on digests, so the length does not show either)."""
    return hmac.compare_digest(hashlib.sha256(typed.encode()).digest(), hashlib.sha256(password.encode()).digest())


class PasswordGate:
    def __init__(self, store: Store, per_address: int = GUESSES_PER_MINUTE_PER_ADDRESS,
                 overall: int = GUESSES_PER_MINUTE_OVERALL) -> None:
        self.store, self.per_address, self.overall = store, per_address, overall
        self._forgotten_at = 0.0

    def guess(self, typed: str, password: str, address: str | None, at: float | None = None) -> Verdict:
        """Count the guess against its address and everyone's, then check it; refused unchecked past a limit."""
        at = time.time() if at is None else at
        minute = int(at // MINUTE_S * MINUTE_S)
        mine = CounterClaim(f"guess:ip:{address or UNKNOWN_ADDRESS}", minute, max_requests=self.per_address)
        everyone = CounterClaim("guess:all", minute, max_requests=self.overall)
        refused = self.store.claim_counters([mine, everyone], 0)
        self._forget_old(at)
        if refused is not None:
            return Verdict(Outcome.WAIT, retry_at=float(minute + MINUTE_S),
                           by="address" if refused == mine else "everyone")
        if same_password(typed, password):
            return Verdict(Outcome.RIGHT)
        spent = self.store.counters([(mine.scope, minute), (everyone.scope, minute)])
        left = min(self.per_address - spent.get((mine.scope, minute), (0, 0))[0],
                   self.overall - spent.get((everyone.scope, minute), (0, 0))[0])
        return Verdict(Outcome.WRONG, retry_at=float(minute + MINUTE_S), left=max(0, left))

    def _forget_old(self, at: float) -> None:
        """Counters of past periods are dropped now and then (the quotas' own cutoff, so theirs stay)."""
        if at - self._forgotten_at >= FORGET_EVERY_S:
            self.store.forget_counters(int(at) - KEEP_PERIODS_S)
            self._forgotten_at = at
