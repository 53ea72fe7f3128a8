"""Saved Batch and Extract runs (atri.batch): written as they go, read back as interrupted when their process died."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update

from .engine import Database
from .rows import BatchRunRow, aware, clip_title, left_behind, now, stale, storable

RUNNING_RUN, INTERRUPTED_RUN = "running", "interrupted"  # a batch run's status: going on; its process died


def _run_status(status: str, written_at: datetime | None, remote_id: str | None = None) -> str:
    """A run sent to the provider's Batch API has no process of its own to die: it is never read as interrupted."""
    if status == RUNNING_RUN and remote_id is None and left_behind(written_at):
        return INTERRUPTED_RUN
    return status


class BatchRuns(Database):
    def save_batch_run(self, owner: str, run_id: str, *, kind: str, title: str, status: str, provider: str | None,
                       model: str | None, rows: int, failed: int, prompt_tokens: int, completion_tokens: int,
                       cost: float | None, currency: str | None, data: dict[str, Any],
                       created_at: datetime | None = None, remote_id: str | None = None,
                       remote_status: str | None = None) -> None:
        """Write (or write again) one run of the Batch page (`remote_*`: one sent to the provider's Batch API)."""
        values = {"owner": owner, "kind": kind[:20], "title": clip_title(title), "status": status[:20],
                  "provider": (provider or None) and provider[:40], "model": (model or None) and model[:200],
                  "rows": rows, "failed": failed, "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "cost": cost, "currency": currency, "data": storable(data), "created_at": created_at or now(),
                  "written_at": now()}
        if remote_id is not None:
            values |= {"remote_id": remote_id[:80], "remote_status": (remote_status or "")[:20] or None}
        with self._session() as session:
            row = session.get(BatchRunRow, run_id)
            if row is not None and row.owner != owner:
                raise KeyError(run_id)
            if row is None:
                session.add(BatchRunRow(id=run_id, **values))
            else:
                for name, value in values.items():
                    setattr(row, name, value)

    def interrupt_stale_runs(self, at_start: bool = False) -> int:
        """Batch runs left "running" by a process that died, marked interrupted (as interrupt_stale_answers).
        Reading one already says so; this makes it last."""
        left_behind = (BatchRunRow.status == RUNNING_RUN) & BatchRunRow.remote_id.is_(None)
        if not (at_start and self.engine.dialect.name == "sqlite"):
            left_behind &= stale(BatchRunRow)
        with self._session() as session:
            return session.execute(update(BatchRunRow).where(left_behind).values(status=INTERRUPTED_RUN)).rowcount

    def still_running(self, run_ids: list[str]) -> None:
        """The batch runs with these ids are still going on in this process."""
        with self._session() as session:
            session.execute(update(BatchRunRow).where(BatchRunRow.id.in_(run_ids), BatchRunRow.status == RUNNING_RUN)
                            .values(written_at=now()))

    def batch_runs(self, owner: str, limit: int = 10) -> list[dict[str, Any]]:
        """This owner's last runs, newest first, without their rows."""
        columns = (BatchRunRow.id, BatchRunRow.kind, BatchRunRow.title, BatchRunRow.status, BatchRunRow.model,
                   BatchRunRow.rows, BatchRunRow.failed, BatchRunRow.cost, BatchRunRow.currency, BatchRunRow.created_at,
                   BatchRunRow.written_at, BatchRunRow.remote_id)
        statement = (select(*columns).where(BatchRunRow.owner == owner)
                     .order_by(BatchRunRow.created_at.desc()).limit(limit))
        with self._session() as session:
            runs = [row._asdict() for row in session.execute(statement)]
        for run in runs:
            run["status"] = _run_status(run.pop("status"), run.pop("written_at"), run.pop("remote_id"))
            run["created_at"] = aware(run["created_at"])
        return runs

    def batch_run(self, owner: str, run_id: str) -> dict[str, Any] | None:
        """A run's record (atri.batch), its status as it stands: a run whose process died is "interrupted"."""
        with self._session() as session:
            row = session.scalar(select(BatchRunRow).where(BatchRunRow.id == run_id, BatchRunRow.owner == owner))
            if row is None or not isinstance(row.data, dict):
                return None
            return {**row.data, "status": _run_status(row.status, row.written_at, row.remote_id)}

    def batch_run_owner(self, run_id: str) -> str | None:
        with self._session() as session:
            return session.scalar(select(BatchRunRow.owner).where(BatchRunRow.id == run_id))

    def remote_runs_going_on(self, limit: int = 100) -> list[str]:
        """The runs sent to a provider's Batch API that have not ended, oldest poll first."""
        statement = (select(BatchRunRow.id).where(BatchRunRow.remote_id.is_not(None), BatchRunRow.status == RUNNING_RUN)
                     .order_by(BatchRunRow.polled_at.asc().nulls_first()).limit(limit))  # never polled first, as on SQLite
        with self._session() as session:
            return list(session.scalars(statement))

    def remote_runs_of(self, owner: str) -> int:
        """How many of this owner's runs a provider's Batch API is still answering, on any replica."""
        statement = select(func.count(BatchRunRow.id)).where(BatchRunRow.owner == owner, BatchRunRow.remote_id.is_not(None),
                                                             BatchRunRow.status == RUNNING_RUN)
        with self._session() as session:
            return int(session.scalar(statement) or 0)

    def claim_remote_poll(self, run_id: str, every: timedelta) -> bool:
        """This process asks the provider about this run now, unless another did within `every`: one atomic
        update, so that of several replicas only one polls (and downloads the results) at a time."""
        moment = now()
        due = or_(BatchRunRow.polled_at.is_(None), BatchRunRow.polled_at <= moment - every)
        with self._session() as session:
            claimed = session.execute(update(BatchRunRow).where(BatchRunRow.id == run_id,
                                                                 BatchRunRow.status == RUNNING_RUN, due)
                                      .values(polled_at=moment)).rowcount
        return claimed == 1
