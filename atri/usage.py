"""The usage dashboard's numbers: tokens, cost, speed and errors of the stored answers.

Added up in SQL (Store.usage_report), never by loading every message: a database of 100,000 answers
opens the page in well under a second. A visitor sees their own answers; the host, after entering
ATRI_ADMIN_PASSWORD, everyone's.
"""
from __future__ import annotations

import csv
import hmac
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from .store import Store

ADMIN_PASSWORD = "ATRI_ADMIN_PASSWORD"
MAX_DAYS = 3660


class UsageInputError(ValueError):
    def __init__(self, key: str, **values: object) -> None:
        super().__init__(f"{key}: {values}")
        self.key, self.values = key, values


def admin_configured(values: Mapping[str, str]) -> bool:
    return bool(values.get(ADMIN_PASSWORD))


def is_admin(values: Mapping[str, str], entered: str) -> bool:
    """Whether `entered` is the host's admin password (compared in constant time); never without one set."""
    configured = values.get(ADMIN_PASSWORD) or ""
    return bool(configured) and hmac.compare_digest(entered.encode("utf-8"), configured.encode("utf-8"))


@dataclass(frozen=True)
class DateRange:
    """Whole days in UTC, both ends included."""

    start: date
    end: date

    @classmethod
    def of(cls, start: date, end: date) -> DateRange:
        if start > end:
            raise UsageInputError("usage_range_backwards", start=start.isoformat(), end=end.isoformat())
        if (end - start).days > MAX_DAYS:
            raise UsageInputError("usage_range_too_long", days=MAX_DAYS)
        return cls(start, end)

    @classmethod
    def last(cls, days: int, today: date | None = None) -> DateRange:
        today = today or datetime.now(UTC).date()
        return cls(today - timedelta(days=days - 1), today)

    def bounds(self) -> tuple[datetime, datetime]:
        return (datetime.combine(self.start, time(), UTC), datetime.combine(self.end + timedelta(days=1), time(), UTC))


@dataclass
class ModelUsage:
    model: str
    answers: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cost: float | None = None
    saved: float | None = None  # by the provider's cache, in the same currency
    currency: str | None = None
    ttft_median: float | None = None
    ttft_p95: float | None = None
    total_median: float | None = None
    total_p95: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.answers if self.answers else 0.0


@dataclass
class UsageReport:
    by_day: list[dict[str, Any]]  # day, model, currency, answers, tokens…, cost
    by_model: list[ModelUsage]
    errors: list[dict[str, Any]]  # kind, answers, share
    conversations: list[dict[str, Any]]  # the most expensive: title, answers, tokens, cost, currency
    batch_runs: list[dict[str, Any]]  # model, runs, rows, failed, tokens, cost, currency
    answers: int = 0
    cost: dict[str, float] = field(default_factory=dict)  # by currency
    saved: dict[str, float] = field(default_factory=dict)  # by the provider's cache, by currency

    @property
    def empty(self) -> bool:
        return self.answers == 0 and not self.batch_runs

    @property
    def prompt_tokens(self) -> int:
        return sum(m.prompt_tokens for m in self.by_model)

    @property
    def completion_tokens(self) -> int:
        return sum(m.completion_tokens for m in self.by_model)


def usage_report(store: Store, owner: str | None, days: DateRange | None = None) -> UsageReport:
    """`owner` None: everyone's (only for the host who entered the admin password)."""
    start, end = days.bounds() if days else (None, None)
    raw = store.usage_report(owner, start, end)
    models: dict[str, ModelUsage] = {}
    for row in raw["by_model"]:
        usage = models.setdefault(row["model"], ModelUsage(row["model"]))
        usage.answers += row["answers"]
        usage.errors += row["errors"]
        for name in ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens"):
            setattr(usage, name, getattr(usage, name) + int(row[name] or 0))
        if row["cost"] is not None and row["currency"]:
            usage.cost, usage.currency = (usage.cost or 0.0) + row["cost"], row["currency"]
        if row.get("saved") is not None and row["currency"]:
            usage.saved = (usage.saved or 0.0) + row["saved"]
    for row in raw["times"]:
        usage = models.get(row["model"])
        if usage is not None:
            prefix = "ttft" if row["metric"] == "ttft_s" else "total"
            setattr(usage, f"{prefix}_median", row.get("median"))
            setattr(usage, f"{prefix}_p95", row.get("p95"))
    answers = sum(m.answers for m in models.values())
    cost: dict[str, float] = {}
    saved: dict[str, float] = {}
    for usage in models.values():
        if usage.cost is not None and usage.currency:
            cost[usage.currency] = cost.get(usage.currency, 0.0) + usage.cost
        if usage.saved is not None and usage.currency:
            saved[usage.currency] = saved.get(usage.currency, 0.0) + usage.saved
    errors = [{**row, "share": row["answers"] / answers if answers else 0.0} for row in raw["errors"]]
    conversations = [{"title": row["title"], "deleted": bool(row["deleted"]), "conversation": row["conversation"],
                      "owner": row["owner"],
                      "answers": row["answers"], "tokens": int(row["prompt_tokens"]) + int(row["completion_tokens"]),
                      "cost": row["cost"], "currency": row["currency"]} for row in raw["conversations"]]
    by_day = [{**row, "prompt_tokens": int(row["prompt_tokens"]), "completion_tokens": int(row["completion_tokens"]),
               "reasoning_tokens": int(row["reasoning_tokens"]), "cached_tokens": int(row["cached_tokens"])}
              for row in raw["by_day"]]
    return UsageReport(by_day, sorted(models.values(), key=lambda m: -(m.cost or 0.0)), errors, conversations,
                       raw["batch_runs"], answers, cost, saved)


def model_rows(report: UsageReport) -> list[dict[str, Any]]:
    return [{"model": m.model, "answers": m.answers, "errors": m.errors, "error_rate": round(m.error_rate, 4),
             "prompt_tokens": m.prompt_tokens, "completion_tokens": m.completion_tokens,
             "reasoning_tokens": m.reasoning_tokens, "cached_tokens": m.cached_tokens,
             "cost": m.cost, "saved": m.saved, "currency": m.currency, "ttft_median_s": m.ttft_median, "ttft_p95_s": m.ttft_p95,
             "total_median_s": m.total_median, "total_p95_s": m.total_p95} for m in report.by_model]


def to_csv(rows: list[dict[str, Any]]) -> bytes:
    """Rows of one table as CSV (UTF-8 with a byte-order mark, for Excel)."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return buffer.getvalue().encode("utf-8-sig")
