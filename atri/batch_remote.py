"""Batch runs sent to the provider's Batch API, followed by the server rather than by a page.

`submit` uploads the rows as a JSONL file, creates the batch and saves the run ("running", with the provider's
batch id). From then on the database is the run's only home: a worker thread of each process polls every run
that has not ended, whichever replica it was sent from. Before asking the provider about a run a process claims
it with one atomic update (atri.store: `claim_remote_poll`), so that of several replicas one asks at a time; a
replica that restarts finds the runs in the database and goes on polling them. When the batch ends, its output
and error files are downloaded (bounded) and matched into the run's rows by custom_id.

A metered connection (a shared demo's quotas) admits every row before the file goes; the admissions are charged
what the results say when this process reads them, and keep their reserve if it does not (a restart).
"""
from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from .batch import RUNS_PER_OWNER, BatchRow, RunView, load_run, save_run
from .batch_api import (
    CANCELLABLE,
    MAX_RESULT_BYTES,
    RUN_STATUS,
    custom_id,
    ended,
    jsonl_of,
    offered,
    read_results,
    remote_state,
    row_request,
    rows_while_waiting,
    settle_rows,
)
from .batch_plan import BatchSpec
from .calls import Target
from .client import cancel_batch, create_batch, file_content, retrieve_batch, upload_batch_file
from .errors import ChatError
from .metering import Admitted
from .pricing import Price
from .settings import Connection
from .store import StorageError, Store, new_id, now
from .tables import BatchInputError
from .tokens import rough_count

POLL_EVERY_S = 30.0  # how often a batch still going is asked about (DashScope answers within hours)
RUNNING = "running"

log = logging.getLogger(__name__)
MISSING_POLLS = 3  # a batch the provider answers 404 for this many polls in a row is failed (once may be a proxy)


class RemoteBatches:
    """The process's side of the runs sent to a Batch API: sends them, polls them all, cancels them."""

    def __init__(self, store: Store, connect: Callable[[str], Connection | None],
                 price_of: Callable[[str], Price | None], poll_every_s: float = POLL_EVERY_S,
                 start: bool = True) -> None:
        """`connect(provider_id)`: the host's connection to a provider (the Batch page sends on the host's key
        only, so a restarted process can poll with it); `price_of(model_id)`: the model's prices today."""
        self.store = store
        self.connect = connect
        self.price_of = price_of
        self.poll_every_s = poll_every_s
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._admissions: dict[str, dict[str, Admitted]] = {}
        self._thread = threading.Thread(target=self._keep_polling, name="atri-remote-batches", daemon=True)
        if start:
            self._thread.start()

    # sending and steering

    def submit(self, owner: str, spec: BatchSpec, target: Target) -> str:
        """Upload the rows and create the batch; the run's id. Raises BatchInputError (too big, no batch
        price) or ChatError (the provider refused; a quota) before anything is saved."""
        if not offered(target):
            raise BatchInputError("batch_api_unavailable", model=target.model.id)
        if self.store.remote_runs_of(owner) >= RUNS_PER_OWNER:  # counted in the database: any replica sent them
            raise BatchInputError("batch_too_many_runs", limit=RUNS_PER_OWNER)
        data = jsonl_of(spec, target)
        run_id = new_id()
        admissions = self._admit(spec, target)
        conn = target.connection
        try:
            file_id = upload_batch_file(conn, f"atri-batch-{run_id[:8]}.jsonl", data)
            batch = create_batch(conn, file_id, {"atri_run": run_id})
        except ChatError:
            for admission in admissions.values():
                admission.charge(0)
            raise
        share = target.price.batch_share if target.price else None
        rows = [BatchRow(i, row.prompt, row.variant, dict(row.values)) for i, row in enumerate(spec.rows)]
        view = RunView(run_id, spec.kind, spec.title(), spec.provider_id, spec.model_id, spec.concurrency, RUNNING,
                       rows, now(), None, spec.system_prompt, spec.json_mode,
                       remote_state(batch, share or 1.0, {"input_file_id": file_id}))
        try:
            save_run(self.store, owner, view)
        except StorageError:
            with contextlib.suppress(ChatError):  # a batch nothing keeps track of is not left to run (and bill)
                cancel_batch(conn, batch["id"])
            for admission in admissions.values():
                admission.charge(0)
            raise
        with self._lock:
            self._admissions[run_id] = admissions
        self._wake.set()
        return run_id

    def _admit(self, spec: BatchSpec, target: Target) -> dict[str, Admitted]:
        meter = target.connection.meter
        if meter is None:
            return {}
        admitted: dict[str, Admitted] = {}
        try:
            for index in range(len(spec.rows)):
                admission = meter.admit_request(row_request(spec, index, target), target.model,
                                                target.count or rough_count)
                if admission is not None:
                    admitted[custom_id(index)] = admission
        except ChatError:
            for admission in admitted.values():
                admission.charge(0)
            raise
        return admitted

    def cancel(self, owner: str, run_id: str) -> RunView | None:
        """Ask the provider to cancel; what finished is kept (the next poll reads it when it says cancelled)."""
        view = load_run(self.store, owner, run_id)
        if view is None or not view.remote or view.remote.get("status") not in CANCELLABLE:
            return view
        conn = self.connect(view.provider_id)
        if conn is None:
            raise ChatError("auth", "no connection to the provider")
        batch = cancel_batch(conn, view.remote["batch_id"])
        view = replace(view, remote=remote_state(batch, view.remote.get("share", 1.0), view.remote))
        save_run(self.store, owner, view)
        self._wake.set()
        return view

    def close(self) -> None:
        self._closed.set()
        self._wake.set()

    # polling

    def _keep_polling(self) -> None:
        while not self._closed.is_set():
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - the worker goes on; the next round tries again
                log.exception("polling the Batch API failed")
            self._wake.wait(self.poll_every_s)
            self._wake.clear()

    def poll_once(self) -> int:
        """Ask about every run going on that no other process asked about lately; how many were asked."""
        asked = 0
        every = timedelta(seconds=self.poll_every_s * 0.8)
        for run_id in self.store.remote_runs_going_on():
            if self._closed.is_set():
                break
            if self.store.claim_remote_poll(run_id, every):
                asked += 1
                self._poll(run_id)
        return asked

    def _poll(self, run_id: str) -> None:
        owner = self.store.batch_run_owner(run_id)
        view = load_run(self.store, owner, run_id) if owner else None
        if view is None or not view.remote.get("batch_id"):
            return
        conn = self.connect(view.provider_id)
        if conn is None:
            log.warning("batch run %s: no connection to %s to poll it with", run_id, view.provider_id)
            return
        rows = [replace(row, values=dict(row.values), notes=list(row.notes)) for row in view.rows]
        try:
            state = remote_state(retrieve_batch(conn, view.remote["batch_id"]), view.remote.get("share", 1.0),
                                 view.remote)
            if not ended(state):
                rows_while_waiting(rows, state)
                save_run(self.store, owner, replace(view, rows=rows, remote=state))
                return
            self._settle(conn, view, rows, state)
        except ChatError as error:
            missing = view.remote.get("missing", 0) + 1 if error.kind == "not_found" else 0
            if error.kind != "not_found" or missing < MISSING_POLLS:  # the provider, the network, a proxy: asked again
                log.warning("batch run %s: polling failed (%s)", run_id, error.kind)
                save_run(self.store, owner, replace(view, remote={**view.remote, "missing": missing}))
                return
            # The provider does not know the batch, poll after poll (another account's key now, or deleted): it
            # will never end.
            state = {**view.remote, "status": "failed", "errors": "the provider has no such batch (404)"}
            settle_rows(rows, {}, state, None)
        wall = (now() - view.started_at).total_seconds()
        save_run(self.store, owner, replace(view, rows=rows, remote=state, status=RUN_STATUS[state["status"]],
                                            wall_s=wall))
        self._charge(run_id, rows)

    def _settle(self, conn: Connection, view: RunView, rows: list[BatchRow], state: dict) -> None:
        wanted = {custom_id(row.index) for row in rows}
        outcomes, unread = {}, False
        for name in ("error_file_id", "output_file_id"):  # output last: a row in both keeps its answer
            if state.get(name):
                data, cut = file_content(conn, state[name], MAX_RESULT_BYTES)
                outcomes |= read_results(data, wanted)
                unread = unread or cut
        state["truncated"] = unread
        settle_rows(rows, outcomes, state, self.price_of(view.model_id), unread)

    def _charge(self, run_id: str, rows: list[BatchRow]) -> None:
        with self._lock:
            admissions = self._admissions.pop(run_id, {})
        for row in rows:
            admission = admissions.get(custom_id(row.index))
            if admission is not None:
                admission.charge(row.prompt_tokens + row.completion_tokens)
