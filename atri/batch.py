"""Many prompts, one model: the tutorial's AsyncOpenAI + asyncio.gather, under a concurrency limit.

Rows go queued → running → done / failed (or stopped). A 429 that can recover waits (as long as the
provider's Retry-After says, when it says) and tries again; any other failure marks its row and never
stops the others. A run belongs to the process, not to a page run: a click, a reload or a closed tab
does not stop it, only Stop does. The run is saved as it goes: at its start, whenever rows have finished
(every few seconds), and when it ends (retried, then in the background, and said on the page while it is
not saved); a run whose process died reads as interrupted with its finished rows, and `resume` asks only
for the rows not done.

Every row is asked through atri.calls.asend (as Extract's sources are): admitted and charged on the
connection's meter, and retried when throttled, as every request is.
"""
from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from .batch_plan import DEFAULT_CONCURRENCY, BatchSpec, RowSpec, Variant
from .calls import Target, asend
from .messages import Message
from .pricing import request_cost
from .request import build_request
from .store import StorageError, Store, new_id, now
from .tables import BatchInputError
from .turn import Turn

RUNS_PER_OWNER = 2  # batch runs one visitor may have going at once

QUEUED, RUNNING, DONE, FAILED, STOPPED = "queued", "running", "done", "failed", "stopped"
EXPIRED = "expired"  # sent to the provider's Batch API, not answered within its window
SAVE_EVERY_S = 2.0  # a run going on is written this often when rows finished, touched (a heartbeat) when not
FINAL_SAVE_RETRY_S = 8.0  # the end of a run waits this long for a database that refuses it; then in the background
BACKGROUND_SAVE_RETRY_S = 3600.0

log = logging.getLogger(__name__)


# --- one row -----------------------------------------------------------------------------------------


@dataclass
class BatchRow:
    index: int
    prompt: str
    variant: Variant
    values: dict[str, str] = field(default_factory=dict)
    status: str = QUEUED
    answer: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    ttft_s: float | None = None
    total_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False
    cost: float | None = None
    currency: str | None = None
    error_kind: str | None = None
    error_detail: str | None = None
    retries: int = 0  # throttled tries that waited and went again
    waiting_s: float | None = None  # set while it waits after a 429
    notes: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """The row as one flat dict: a line of the JSONL download, a saved run's row."""
        data = asdict(self)
        variant = data.pop("variant")
        data.pop("waiting_s")
        return {**data, **variant}

    @classmethod
    def of(cls, record: dict[str, Any]) -> BatchRow:
        """A saved row read back; unknown keys are ignored and wrong types fall back to defaults."""
        names = {f for f in cls.__dataclass_fields__ if f not in ("variant", "waiting_s")}
        defaults = cls(0, "", Variant())
        kept = {}
        for name in names:
            value = record.get(name, getattr(defaults, name))
            default = getattr(defaults, name)
            if default is not None and not isinstance(value, type(default)):
                value = default
            kept[name] = value
        variant = Variant(record.get("temperature") if isinstance(record.get("temperature"), (int, float)) else None,
                          bool(record.get("thinking")),
                          record.get("thinking_budget") if isinstance(record.get("thinking_budget"), int) else None)
        return cls(variant=variant, **kept)


# --- a run ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    rows: int
    done: int
    failed: int
    stopped: int
    running: int
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cost: float | None
    currency: str | None
    estimated: bool

    @classmethod
    def of(cls, rows: list[BatchRow]) -> Totals:
        costs = [r.cost for r in rows if r.cost is not None]
        return cls(rows=len(rows), done=sum(r.status == DONE for r in rows), failed=sum(r.status == FAILED for r in rows),
                   stopped=sum(r.status in (STOPPED, EXPIRED) for r in rows), running=sum(r.status == RUNNING for r in rows),
                   prompt_tokens=sum(r.prompt_tokens for r in rows),
                   completion_tokens=sum(r.completion_tokens for r in rows),
                   reasoning_tokens=sum(r.reasoning_tokens for r in rows),
                   cost=sum(costs) if costs else None, currency=next((r.currency for r in rows if r.currency), None),
                   estimated=any(r.estimated for r in rows))


@dataclass(frozen=True)
class RunView:
    """A run as a page draws it: copies, safe to read while the run goes on."""

    id: str
    kind: str
    title: str
    provider_id: str
    model_id: str
    concurrency: int
    status: str  # "running" | "done" | "stopped" (read back: "interrupted"; the Batch API's: "expired", "failed")
    rows: list[BatchRow]
    started_at: datetime
    wall_s: float | None
    system_prompt: str = ""
    json_mode: bool = False
    remote: dict[str, Any] = field(default_factory=dict)  # sent to the provider's Batch API: atri.batch_api

    @property
    def totals(self) -> Totals:
        return Totals.of(self.rows)

    @property
    def finished(self) -> bool:
        return self.status != "running"

    def record(self) -> dict[str, Any]:
        return {"kind": self.kind, "title": self.title, "provider": self.provider_id, "model": self.model_id,
                "concurrency": self.concurrency, "status": self.status, "wall_s": self.wall_s,
                "system_prompt": self.system_prompt, "json_mode": self.json_mode,
                "started_at": self.started_at.isoformat(), "rows": [r.record() for r in self.rows],
                **({"remote": self.remote} if self.remote else {})}

    @classmethod
    def of(cls, run_id: str, record: dict[str, Any]) -> RunView:
        """A saved run read back (atri.store keeps `record()` in batch_runs.data)."""
        rows = [BatchRow.of(r) for r in record.get("rows", []) if isinstance(r, dict)]
        try:
            started = datetime.fromisoformat(str(record.get("started_at")))
        except ValueError:
            started = now()
        text = {name: str(record.get(name) or "") for name in ("kind", "title", "provider", "model", "status",
                                                                "system_prompt")}
        wall = record.get("wall_s")
        concurrency = record.get("concurrency")
        return cls(run_id, text["kind"] or "batch", text["title"], text["provider"], text["model"],
                   concurrency if isinstance(concurrency, int) else DEFAULT_CONCURRENCY, text["status"] or "done",
                   rows, started, wall if isinstance(wall, (int, float)) else None, text["system_prompt"],
                   bool(record.get("json_mode")), record["remote"] if isinstance(record.get("remote"), dict) else {})


class BatchRun:
    """One run in progress, owned by the process: its rows change as their answers come."""

    def __init__(self, owner: str, spec: BatchSpec, target: Target, resumed: RunView | None = None) -> None:
        """`resumed`: a saved run to go on with, under its id: its done rows are kept, the others asked."""
        self.id = resumed.id if resumed else new_id()
        self.owner = owner
        self.spec = spec
        self.target = target
        self.rows = [BatchRow(i, row.prompt, row.variant, dict(row.values)) for i, row in enumerate(spec.rows)]
        if resumed:
            self.rows = [replace(old) if old.status == DONE else new for old, new in zip(resumed.rows, self.rows)]
        self.status = "running"
        self.started_at = resumed.started_at if resumed else now()
        self.saved = threading.Event()  # the database has the run as it ended
        self._earlier_s = (resumed.wall_s or 0.0) if resumed else 0.0
        self._started = time.perf_counter()
        self._ended: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task] = []
        self.finished = threading.Event()

    # reading and steering from other threads

    def view(self) -> RunView:
        with self._lock:
            rows = [replace(row, values=dict(row.values), notes=list(row.notes)) for row in self.rows]
            wall = self._earlier_s + (self._ended or time.perf_counter()) - self._started
            return RunView(self.id, self.spec.kind, self.spec.title(), self.spec.provider_id, self.spec.model_id,
                           self.spec.concurrency, self.status, rows, self.started_at, wall, self.spec.system_prompt,
                           self.spec.json_mode)

    def stop(self) -> None:
        """Cancel what is left (running answers close their connection); what finished is kept."""
        self._stop.set()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._cancel_tasks)
            except RuntimeError:  # the loop closed meanwhile: the run is over anyway
                pass

    def wait(self, timeout: float | None = None) -> bool:
        return self.finished.wait(timeout)

    def rows_ended(self) -> int:
        with self._lock:
            return sum(row.status in (DONE, FAILED, STOPPED) for row in self.rows)

    def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()

    # the run itself, in its own thread and event loop

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        limit = asyncio.Semaphore(self.spec.concurrency)
        self._tasks = [asyncio.create_task(self._row(row, limit)) for row in self.rows if row.status != DONE]
        if self._stop.is_set():
            self._cancel_tasks()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with self._lock:
            for row in self.rows:  # a task cancelled before it began never marked its row
                if row.status in (QUEUED, RUNNING):
                    row.status = STOPPED
            self._ended = time.perf_counter()
            self.status = "stopped" if self._stop.is_set() else "done"

    async def _row(self, row: BatchRow, limit: asyncio.Semaphore) -> None:
        try:
            async with limit:
                if self._stop.is_set():
                    self._set(row, status=STOPPED)
                    return
                self._set(row, status=RUNNING)
                options = self.spec.options(row.variant)
                model = self.target.model
                plan = build_request([Message("user", row.prompt)], options, model, self.target.connection.provider)
                turn = await asend(self.target.connection, plan, count=self.target.count,
                                  on_turn=lambda turn: self._follow(row, turn),
                                  on_wait=lambda seconds: self._waiting(row, seconds))
                self._finish(row, turn)
        except asyncio.CancelledError:
            self._set(row, status=STOPPED, waiting_s=None)
        except Exception as error:  # noqa: BLE001 - one row's surprise must never stop the others
            self._set(row, status=FAILED, error_kind="unknown", error_detail=type(error).__name__, waiting_s=None)

    def _set(self, row: BatchRow, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(row, name, value)

    def _waiting(self, row: BatchRow, seconds: float) -> None:
        with self._lock:
            row.retries += 1
            row.waiting_s = seconds
            row.answer = row.reasoning = ""

    def _follow(self, row: BatchRow, turn: Turn) -> None:
        with self._lock:
            row.waiting_s = None
            row.answer, row.reasoning = turn.content, turn.reasoning
            if turn.first_token_at is not None:
                row.ttft_s = turn.first_token_at - turn.started

    def _finish(self, row: BatchRow, turn: Turn) -> None:
        message = turn.to_message(self.spec.options(row.variant))
        facts = message.facts
        usage = facts.usage
        price = self.target.price
        with self._lock:
            row.answer, row.reasoning, row.finish_reason = turn.content, turn.reasoning, turn.finish_reason
            row.ttft_s, row.total_s = facts.ttft_s, facts.total_s
            row.notes = list(facts.notes)
            row.waiting_s = None
            if usage:
                row.prompt_tokens, row.completion_tokens = usage.prompt_tokens, usage.completion_tokens
                row.reasoning_tokens, row.estimated = usage.reasoning_tokens, usage.estimated
                if price:
                    row.cost, row.currency = request_cost(price, usage, bool(turn.reasoning)), price.currency
            row.error_kind, row.error_detail = facts.error_kind, facts.error_detail
            row.status = FAILED if facts.error_kind else DONE


def run_sync(run: BatchRun) -> RunView:
    """Run to the end in this thread (tests, benchmarks); the page uses BatchRunner instead."""
    asyncio.run(run.run())
    run.finished.set()
    return run.view()


class BatchRunner:
    """The process's batch runs, each in a thread of its own with its own event loop; saved as they go."""

    KEPT = 64  # finished runs kept in memory (the store has them all)

    def __init__(self, store: Store | None = None) -> None:
        self.store = store
        self._runs: dict[str, BatchRun] = {}
        self._lock = threading.Lock()
        if store is not None:
            store.interrupt_stale_runs(at_start=True)  # left "running" by a process that died

    def start(self, owner: str, spec: BatchSpec, target: Target) -> BatchRun:
        return self._start(BatchRun(owner, spec, target))

    def resume(self, owner: str, view: RunView, target: Target) -> BatchRun:
        """Go on with a saved run that did not finish (stopped, or its process died): only the rows not
        done are asked, with the run's own settings, under the same id."""
        if view.status == "running" or view.id in self._runs and not self._runs[view.id].finished.is_set():
            raise BatchInputError("batch_too_many_runs", limit=RUNS_PER_OWNER)
        return self._start(BatchRun(owner, spec_of(view), target, resumed=view))

    def _start(self, run: BatchRun) -> BatchRun:
        if not run.spec.rows:
            raise BatchInputError("batch_no_prompts")
        with self._lock:
            live = sum(1 for other in self._runs.values() if other.owner == run.owner and not other.finished.is_set())
            if live >= RUNS_PER_OWNER:
                raise BatchInputError("batch_too_many_runs", limit=RUNS_PER_OWNER)
            self._runs[run.id] = run
            finished = [r for r in self._runs.values() if r.finished.is_set()]
            for old in finished[: max(0, len(finished) - self.KEPT)]:
                self._runs.pop(old.id, None)
        threading.Thread(target=self._work, args=(run,), name=f"atri-batch-{run.id[:6]}", daemon=True).start()
        return run

    def _work(self, run: BatchRun) -> None:
        ended = threading.Event()
        saving = threading.Thread(target=self._keep_saved, args=(run, ended), name=f"atri-batch-save-{run.id[:6]}",
                                  daemon=True)
        if self.store is not None:
            saving.start()
        try:
            asyncio.run(run.run())
        finally:
            ended.set()
            if self.store is not None:
                saving.join()  # its last write must not land after the final one
                if not self._save(run, FINAL_SAVE_RETRY_S):
                    threading.Thread(target=self._save, args=(run, BACKGROUND_SAVE_RETRY_S), daemon=True,
                                     name=f"atri-batch-save-{run.id[:6]}").start()
            else:
                run.saved.set()
            run.finished.set()

    def _keep_saved(self, run: BatchRun, ended: threading.Event) -> None:
        """While the run goes on: written at once, then again whenever rows have finished, and touched
        otherwise, so that any replica can tell it from a run whose process died."""
        written = -1
        while True:
            rows_ended = run.rows_ended()
            try:
                if rows_ended != written:
                    save_run(self.store, run.owner, run.view())
                    written = rows_ended
                else:
                    self.store.still_running([run.id])
            except StorageError:
                pass  # tried again at the next beat
            except Exception:  # noqa: BLE001 - the run goes on; its final save says whether it is saved
                log.exception("saving a batch run failed")
            if ended.wait(SAVE_EVERY_S):
                return

    def _save(self, run: BatchRun, seconds: float) -> bool:
        """The run as it ended, retried while the database refuses it; `run.saved` says when it has it."""
        retrying = Retrying(stop=stop_after_delay(seconds), wait=wait_exponential(multiplier=0.2, max=3),
                            retry=retry_if_exception_type(StorageError), reraise=True)
        try:
            retrying(save_run, self.store, run.owner, run.view())
        except Exception:  # noqa: BLE001 - the page says it is not saved; the run stays readable in memory
            log.exception("the final save of a batch run failed")
            return False
        run.saved.set()
        return True

    def get(self, owner: str, run_id: str) -> BatchRun | None:
        run = self._runs.get(run_id)
        return run if run is not None and run.owner == owner else None

    def live(self, owner: str) -> list[BatchRun]:
        return [run for run in list(self._runs.values()) if run.owner == owner and not run.finished.is_set()]

    def close(self) -> None:
        for run in list(self._runs.values()):
            run.stop()


def save_run(store: Store, owner: str, view: RunView) -> None:
    totals = view.totals
    store.save_batch_run(owner, view.id, kind=view.kind, title=view.title, status=view.status,
                         provider=view.provider_id, model=view.model_id, rows=totals.rows, failed=totals.failed,
                         prompt_tokens=totals.prompt_tokens, completion_tokens=totals.completion_tokens,
                         cost=totals.cost, currency=totals.currency, data=view.record(), created_at=view.started_at,
                         remote_id=view.remote.get("batch_id") or None, remote_status=view.remote.get("status"))


def spec_of(view: RunView) -> BatchSpec:
    """What a saved run asked, to ask it again."""
    rows = tuple(RowSpec(row.prompt, row.variant, dict(row.values)) for row in view.rows)
    return BatchSpec(view.kind, view.provider_id, view.model_id, rows, view.concurrency, view.system_prompt,
                     view.json_mode)


def load_run(store: Store, owner: str, run_id: str) -> RunView | None:
    record = store.batch_run(owner, run_id)
    return RunView.of(run_id, record) if record is not None else None


# --- downloads -----------------------------------------------------------------------------------------

CSV_COLUMNS = ("index", "status", "prompt", "temperature", "thinking", "thinking_budget", "answer", "reasoning",
               "finish_reason", "ttft_s", "total_s", "prompt_tokens", "completion_tokens", "reasoning_tokens",
               "cost", "currency", "error_kind", "error_detail", "retries")


def to_csv(rows: list[BatchRow]) -> bytes:
    """UTF-8 with a byte-order mark, so that Excel opens Chinese text as it is."""
    extra = [name for name in dict.fromkeys(k for r in rows for k in r.values) if name not in CSV_COLUMNS]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*CSV_COLUMNS, *extra])
    for row in rows:
        record = row.record()
        writer.writerow([_csv_cell(record.get(name)) for name in CSV_COLUMNS] + [row.values.get(name, "") for name in extra])
    return buffer.getvalue().encode("utf-8-sig")


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def to_jsonl(rows: list[BatchRow]) -> bytes:
    return "".join(json.dumps(row.record(), ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
