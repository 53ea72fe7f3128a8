"""What was spent: an owner's totals and the Usage page's report, added up in SQL."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select

from .engine import Database
from .rows import STREAMING, BatchRunRow, ConversationRow, MessageRow


@dataclass
class UsageTotals:
    answers: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cost: dict[str, float] = field(default_factory=dict)  # by currency
    saved: dict[str, float] = field(default_factory=dict)  # by the provider's cache, by currency


class Usage(Database):
    def usage_totals(self, owner: str, since: datetime | None = None) -> UsageTotals:
        """Every answer of this owner (regenerated ones too: they were paid for), added up in one query."""
        conversations = select(ConversationRow.id).where(ConversationRow.owner == owner)
        statement = (select(MessageRow.currency, func.count(MessageRow.id), func.sum(MessageRow.prompt_tokens),
                            func.sum(MessageRow.completion_tokens), func.sum(MessageRow.reasoning_tokens),
                            func.sum(MessageRow.cached_tokens), func.sum(MessageRow.cost), func.sum(MessageRow.saved))
                     .where(MessageRow.conversation_id.in_(conversations), MessageRow.role == "assistant")
                     .group_by(MessageRow.currency))
        if since is not None:
            statement = statement.where(MessageRow.created_at >= since)
        totals = UsageTotals()
        with self._session() as session:
            for currency, answers, prompt, completion, reasoning, cached, cost, saved in session.execute(statement):
                totals.answers += answers
                totals.prompt_tokens += prompt or 0
                totals.completion_tokens += completion or 0
                totals.reasoning_tokens += reasoning or 0
                totals.cached_tokens += cached or 0
                if currency and cost:
                    totals.cost[currency] = cost
                if currency and saved:
                    totals.saved[currency] = saved
        return totals

    def usage_report(self, owner: str | None, start: datetime | None = None,
                     end: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
        """Answers added up in SQL (never loaded one by one), for `owner` or, with None, for everyone;
        `start` inclusive, `end` exclusive. Median and p95 are nearest-rank, from window functions
        that SQLite and PostgreSQL share. Answers still being written are left out."""
        answers = [MessageRow.role == "assistant", or_(MessageRow.error_kind.is_(None), MessageRow.error_kind != STREAMING)]
        if owner is not None:
            answers.append(MessageRow.conversation_id.in_(select(ConversationRow.id).where(ConversationRow.owner == owner)))
        if start is not None:
            answers.append(MessageRow.created_at >= start.astimezone(UTC))
        if end is not None:
            answers.append(MessageRow.created_at < end.astimezone(UTC))
        stamp = MessageRow.created_at
        day = func.date(func.timezone("UTC", stamp) if self.engine.dialect.name == "postgresql" else stamp)
        sums = (func.count(MessageRow.id).label("answers"),
                func.coalesce(func.sum(MessageRow.prompt_tokens), 0).label("prompt_tokens"),
                func.coalesce(func.sum(MessageRow.completion_tokens), 0).label("completion_tokens"),
                func.coalesce(func.sum(MessageRow.reasoning_tokens), 0).label("reasoning_tokens"),
                func.coalesce(func.sum(MessageRow.cached_tokens), 0).label("cached_tokens"),
                func.sum(MessageRow.cost).label("cost"), func.sum(MessageRow.saved).label("saved"))
        model = func.coalesce(MessageRow.model, "").label("model")
        report: dict[str, list[dict[str, Any]]] = {}
        with self._session() as session:
            def rows(statement: Any) -> list[dict[str, Any]]:
                return [dict(row._mapping) for row in session.execute(statement)]

            report["by_day"] = rows(select(day.label("day"), model, MessageRow.currency, *sums,
                                           func.count(MessageRow.error_kind).label("errors")).where(*answers)
                                    .group_by(day, model, MessageRow.currency).order_by(day, model))
            by_model: dict[tuple[str, str | None], dict[str, Any]] = {}
            for row in report["by_day"]:  # a few rows a day: added up here rather than in another scan
                row["day"] = str(row["day"])[:10]
                total = by_model.setdefault((row["model"], row["currency"]), {
                    "model": row["model"], "currency": row["currency"], "cost": None, "saved": None,
                    **dict.fromkeys(("answers", "prompt_tokens", "completion_tokens", "reasoning_tokens",
                                     "cached_tokens", "errors"), 0)})
                for name in ("answers", "prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens", "errors"):
                    total[name] += int(row[name] or 0)
                for name in ("cost", "saved"):
                    if row[name] is not None:
                        total[name] = (total[name] or 0.0) + row[name]
            report["by_model"] = sorted(by_model.values(), key=lambda r: (r["model"], r["currency"] or ""))
            report["errors"] = rows(select(MessageRow.error_kind.label("kind"), func.count().label("answers"))
                                    .where(*answers, MessageRow.error_kind.is_not(None))
                                    .group_by(MessageRow.error_kind).order_by(func.count().desc()))
            report["times"] = []
            for metric in ("ttft_s", "total_s"):
                value = getattr(MessageRow, metric)
                ranked = (select(model, value.label("value"),
                                 func.row_number().over(partition_by=model, order_by=value).label("rank"),
                                 func.count().over(partition_by=model).label("n"))
                          .where(*answers, value.is_not(None)).subquery())
                median, p95 = (ranked.c.n * 50 + 99) // 100, (ranked.c.n * 95 + 99) // 100
                found: dict[str, dict[str, Any]] = {}
                for row in session.execute(select(ranked.c.model, ranked.c.value, ranked.c.rank, ranked.c.n, median, p95)
                                           .where(or_(ranked.c.rank == median, ranked.c.rank == p95))):
                    entry = found.setdefault(row[0], {"model": row[0], "metric": metric, "n": row[3]})
                    if row[2] == row[4]:
                        entry["median"] = row[1]
                    if row[2] == row[5]:
                        entry["p95"] = row[1]
                report["times"] += list(found.values())
            cost = func.sum(MessageRow.cost)
            top = (select(MessageRow.conversation_id.label("conversation"), MessageRow.currency, *sums)
                   .where(*answers, MessageRow.cost.is_not(None))
                   .group_by(MessageRow.conversation_id, MessageRow.currency).order_by(cost.desc()).limit(10).subquery())
            report["conversations"] = rows(select(top, ConversationRow.title, ConversationRow.owner,
                                                  ConversationRow.deleted_at.is_not(None).label("deleted"))
                                           .join(ConversationRow, ConversationRow.id == top.c.conversation)
                                           .order_by(top.c.cost.desc()))
            runs = [] if owner is None else [BatchRunRow.owner == owner]
            if start is not None:
                runs.append(BatchRunRow.created_at >= start.astimezone(UTC))
            if end is not None:
                runs.append(BatchRunRow.created_at < end.astimezone(UTC))
            report["batch_runs"] = rows(
                select(func.coalesce(BatchRunRow.model, "").label("model"), BatchRunRow.currency,
                       func.count(BatchRunRow.id).label("runs"), func.sum(BatchRunRow.rows).label("rows"),
                       func.sum(BatchRunRow.failed).label("failed"),
                       func.sum(BatchRunRow.prompt_tokens).label("prompt_tokens"),
                       func.sum(BatchRunRow.completion_tokens).label("completion_tokens"),
                       func.sum(BatchRunRow.cost).label("cost"))
                .where(*runs).group_by(BatchRunRow.model, BatchRunRow.currency).order_by(BatchRunRow.model))
        return report
