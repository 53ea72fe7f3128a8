"""Quota counters (atri.quotas decides what to count; this keeps the counts, atomically) and the app's secrets."""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from .engine import Database
from .rows import AppSecretRow, QuotaCounterRow


@dataclass(frozen=True)
class CounterClaim:
    """Take one request and some tokens from a counter, unless that passes its limits (None: no limit)."""

    scope: str
    period: int
    max_requests: int | None = None
    max_tokens: int | None = None


class Counters(Database):
    def app_secret(self, name: str) -> bytes:
        """A random 32-byte secret made once and kept in the database, so every replica and restart agrees."""
        with self._session() as session:
            row = session.get(AppSecretRow, name)
            if row is not None:
                return row.value
        try:
            with self._session() as session:
                session.add(AppSecretRow(name=name, value=secrets.token_bytes(32)))
        except IntegrityError:  # another replica made it first: theirs wins
            pass
        with self._session() as session:
            return session.get(AppSecretRow, name).value

    def claim_counters(self, claims: list[CounterClaim], tokens: int) -> CounterClaim | None:
        """Add one request and `tokens` to every claimed counter in one transaction, or to none: the first
        claim that would pass a limit comes back. Each counter is changed by one conditional UPDATE, so
        tabs and replicas racing on one database cannot both get the last request."""
        dialect_insert = postgres_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        counter = QuotaCounterRow
        with self._session() as session:
            for claim in sorted(claims, key=lambda c: (c.scope, c.period)):  # one lock order: no deadlocks
                session.execute(dialect_insert(counter).values(scope=claim.scope, period=claim.period, requests=0,
                                                               tokens=0).on_conflict_do_nothing())
                conditions = [counter.scope == claim.scope, counter.period == claim.period]
                if claim.max_requests is not None:
                    conditions.append(counter.requests < claim.max_requests)
                if claim.max_tokens is not None:
                    conditions.append(counter.tokens + tokens <= claim.max_tokens)
                taken = session.execute(update(counter).where(*conditions)
                                        .values(requests=counter.requests + 1, tokens=counter.tokens + tokens))
                if taken.rowcount == 0:
                    session.rollback()
                    return claim
        return None

    def add_counter_tokens(self, counters: list[tuple[str, int]], tokens: int) -> None:
        """Correct counters by `tokens` (the real usage minus what was estimated; may be negative)."""
        if not counters or not tokens:
            return
        with self._session() as session:
            for scope, period in sorted(counters):
                session.execute(update(QuotaCounterRow)
                                .where(QuotaCounterRow.scope == scope, QuotaCounterRow.period == period)
                                .values(tokens=func.max(0, QuotaCounterRow.tokens + tokens)
                                        if self.engine.dialect.name == "sqlite"
                                        else func.greatest(0, QuotaCounterRow.tokens + tokens)))

    def counters(self, counters: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[int, int]]:
        """(requests, tokens) spent by each counter; counters never used are left out."""
        if not counters:
            return {}
        wanted = or_(*(((QuotaCounterRow.scope == scope) & (QuotaCounterRow.period == period))
                       for scope, period in counters))
        with self._session() as session:
            rows = session.execute(select(QuotaCounterRow.scope, QuotaCounterRow.period, QuotaCounterRow.requests,
                                          QuotaCounterRow.tokens).where(wanted)).all()
        return {(row.scope, row.period): (row.requests, row.tokens) for row in rows}

    def forget_counters(self, before: int) -> None:
        """Drop counters of periods that started before `before` (seconds since the epoch)."""
        with self._session() as session:
            session.execute(QuotaCounterRow.__table__.delete().where(QuotaCounterRow.period < before))
