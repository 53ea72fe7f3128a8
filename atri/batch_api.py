"""A Batch run sent through the provider's Batch API (DashScope's OpenAI-compatible one): the rows as a JSONL
file of requests, the states the provider reports, and its result files read back into the same rows.

Each row's request is the one the real-time mode sends (atri.request.build_request), without streaming. The
file is bounded before it is uploaded (DashScope: 50,000 requests and 100 MB per file, 6 MB per request), and
what is read back is bounded too: a result file is read up to MAX_RESULT_BYTES, a line up to
MAX_RESULT_LINE_BYTES, and only the lines of this run's rows are kept. Cost is the model's batch share of the
real-time price (atri/data/prices.toml), the saving what the same usage would have cost in real time.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .batch import DONE, EXPIRED, FAILED, QUEUED, RUNNING, STOPPED, BatchRow, RunView
from .batch_plan import BatchSpec
from .calls import Target
from .client import BATCH_ENDPOINT, request_body
from .errors import classify_status
from .messages import Message, Usage
from .pricing import Price, batch_cost
from .providers import Thinking
from .request import build_request
from .tables import BatchInputError

MAX_LINES = 50_000  # DashScope: requests in one file
MAX_FILE_BYTES = 100 * 1024 * 1024  # DashScope's pages say 100 MB (later ones 500 MB): the smaller is kept
MAX_LINE_BYTES = 6 * 1024 * 1024  # one request
MAX_RESULT_BYTES = 64 * 1024 * 1024  # read of one output or error file; rows past it are marked, not read
MAX_RESULT_LINE_BYTES = 4 * 1024 * 1024
MAX_ANSWER_CHARS = 200_000  # kept of one answer (or its reasoning)
DETAIL_CHARS = 400

CANCELLABLE = ("validating", "in_progress", "finalizing")  # the provider's states while it works, a cancel possible
ACTIVE = (*CANCELLABLE, "cancelling")
RUN_STATUS = {"completed": "done", "cancelled": "stopped", "expired": "expired", "failed": "failed"}
LEFT_ROWS = {"expired": EXPIRED, "cancelled": STOPPED}  # what a row with no result is, by how the batch ended
ROW_ERRORS = {"batch_expired": EXPIRED, "batch_cancelled": STOPPED}  # error codes that only say it never ran


def custom_id(index: int) -> str:
    return f"row-{index + 1}"


def offered(target: Target) -> bool:
    """Whether the provider has a Batch API and the price table knows this model's batch price."""
    return target.connection.provider.batch_api and target.price is not None and target.price.batch_share is not None


# --- the file of requests --------------------------------------------------------------------------------


def row_request(spec: BatchSpec, index: int, target: Target) -> dict[str, Any]:
    """The keyword arguments the real-time mode sends for this row."""
    row = spec.rows[index]
    return build_request([Message("user", row.prompt)], spec.options(row.variant), target.model,
                         target.connection.provider).kwargs


def request_line(spec: BatchSpec, index: int, target: Target) -> dict[str, Any]:
    """One row as a line of the file: its real-time request, not streamed. Hybrid models are told whether to
    think explicitly (DashScope's batch requires it)."""
    kwargs = row_request(spec, index, target)
    body = {key: value for key, value in request_body(kwargs).items() if key not in ("stream", "stream_options")}
    if target.model.thinking == Thinking.HYBRID:
        body.setdefault("enable_thinking", False)
    return {"custom_id": custom_id(index), "method": "POST", "url": BATCH_ENDPOINT, "body": body}


def jsonl_of(spec: BatchSpec, target: Target) -> bytes:
    """The file to upload, refused (BatchInputError) past DashScope's limits before anything is sent."""
    if len(spec.rows) > MAX_LINES:
        raise BatchInputError("batch_api_too_many_rows", limit=MAX_LINES)
    lines, size = [], 0
    for index in range(len(spec.rows)):
        line = json.dumps(request_line(spec, index, target), ensure_ascii=False).encode() + b"\n"
        if len(line) > MAX_LINE_BYTES:
            raise BatchInputError("batch_api_line_too_big", row=index + 1, limit=MAX_LINE_BYTES // 2**20)
        size += len(line)
        if size > MAX_FILE_BYTES:
            raise BatchInputError("batch_api_file_too_big", limit=MAX_FILE_BYTES // 2**20)
        lines.append(line)
    return b"".join(lines)


# --- the provider's state ----------------------------------------------------------------------------------


def remote_state(batch: dict[str, Any], share: float, before: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a run keeps of the provider's batch object (saved in the run's record as `remote`)."""
    counts = batch.get("request_counts") if isinstance(batch.get("request_counts"), dict) else {}
    state = dict(before or {})
    state.update({
        "batch_id": str(batch.get("id") or state.get("batch_id") or ""),
        "status": str(batch.get("status") or "validating")[:20],
        "input_file_id": batch.get("input_file_id") or state.get("input_file_id"),
        "output_file_id": batch.get("output_file_id"),
        "error_file_id": batch.get("error_file_id"),
        "counts": {name: int(counts.get(name) or 0) for name in ("total", "completed", "failed")},
        "share": share,
        "errors": batch_errors(batch.get("errors")),
        "missing": 0,  # the provider knew it this time (atri.batch_remote counts the polls it did not)
    })
    return state


def batch_errors(errors: Any) -> str | None:
    """Why a batch failed as a whole (its file did not validate): `code — message (line n)`, the first few."""
    data = errors.get("data") if isinstance(errors, dict) else None
    if not isinstance(data, list) or not data:
        return None
    parts = []
    for error in data[:3]:
        if isinstance(error, dict):
            line = f" (line {error['line']})" if isinstance(error.get("line"), int) else ""
            parts.append(" — ".join(str(error[k]) for k in ("code", "message") if error.get(k)) + line)
    return "; ".join(parts)[:DETAIL_CHARS] or None


def ended(state: dict[str, Any]) -> bool:
    return state.get("status") in RUN_STATUS


# --- results -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One row's line of an output or error file."""

    answer: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    status: str = DONE
    error_kind: str | None = None
    error_detail: str | None = None


def read_results(data: bytes, wanted: set[str]) -> dict[str, Outcome]:
    """The lines of an output or error file that answer one of `wanted` (custom ids); others, lines too long
    and lines that are not JSON objects are skipped."""
    outcomes: dict[str, Outcome] = {}
    for raw in data.split(b"\n"):
        if not raw.strip() or len(raw) > MAX_RESULT_LINE_BYTES:
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict) and isinstance(line.get("custom_id"), str) and line["custom_id"] in wanted:
            outcomes[line["custom_id"]] = outcome_of(line)
    return outcomes


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value[:MAX_ANSWER_CHARS] if isinstance(value, str) else ""


def _count(value: Any) -> int:
    return value if isinstance(value, int) and 0 <= value < 10**9 else 0


def outcome_of(line: dict[str, Any]) -> Outcome:
    response = _dict(line.get("response"))
    body = _dict(response.get("body"))
    error = _dict(line.get("error")) or _dict(body.get("error"))
    status_code = response.get("status_code") if isinstance(response.get("status_code"), int) else None
    if error or (status_code is not None and status_code != 200):
        code = str(error.get("code") or "")
        if code in ROW_ERRORS:
            return Outcome(status=ROW_ERRORS[code])
        reason = " — ".join(str(error[k]) for k in ("code", "message") if error.get(k))[:DETAIL_CHARS]
        return Outcome(status=FAILED, error_kind=classify_status(status_code or 400, reason), error_detail=reason or None)
    choice = _dict((body.get("choices") or [None])[0] if isinstance(body.get("choices"), list) else None)
    message = _dict(choice.get("message"))
    usage = _dict(body.get("usage"))
    details = _dict(usage.get("completion_tokens_details"))
    return Outcome(answer=_text(message.get("content")), reasoning=_text(message.get("reasoning_content")),
                   finish_reason=choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None,
                   usage=Usage(prompt_tokens=_count(usage.get("prompt_tokens")),
                               completion_tokens=_count(usage.get("completion_tokens")),
                               reasoning_tokens=_count(details.get("reasoning_tokens"))) if usage else None)


def apply_outcome(row: BatchRow, outcome: Outcome, price: Price | None) -> None:
    row.status, row.error_kind, row.error_detail = outcome.status, outcome.error_kind, outcome.error_detail
    row.answer, row.reasoning, row.finish_reason = outcome.answer, outcome.reasoning, outcome.finish_reason
    if outcome.usage is not None:
        usage = outcome.usage
        row.prompt_tokens, row.completion_tokens, row.reasoning_tokens = (usage.prompt_tokens, usage.completion_tokens,
                                                                          usage.reasoning_tokens)
        if price is not None and price.batch_share is not None:
            row.cost, row.currency = batch_cost(price, usage), price.currency


def settle_rows(rows: list[BatchRow], outcomes: dict[str, Outcome], state: dict[str, Any], price: Price | None,
                unread: bool = False) -> None:
    """The rows as the ended batch leaves them: each its result; a row with none is expired or stopped when
    the batch expired or was cancelled, and failed otherwise (`unread`: a result file was too big to read)."""
    left = LEFT_ROWS.get(str(state.get("status")))
    for row in rows:
        outcome = outcomes.get(custom_id(row.index))
        if outcome is not None:
            apply_outcome(row, outcome, price)
        elif state.get("status") == "failed":
            row.status, row.error_kind, row.error_detail = FAILED, "batch_failed", state.get("errors") or None
        elif left is not None and not unread:
            row.status = left
        else:
            row.status, row.error_kind = FAILED, "batch_no_result"
            row.error_detail = "result file too big to read" if unread else "not in the output or error file"


def rows_while_waiting(rows: list[BatchRow], state: dict[str, Any]) -> None:
    going = RUNNING if state.get("status") in ("in_progress", "finalizing", "cancelling") else QUEUED
    for row in rows:
        row.status = going


def with_saving(view: RunView) -> tuple[float, float] | None:
    """(what the answered rows would have cost in real time, what the batch price saved), in the run's currency."""
    share, cost = view.remote.get("share"), view.totals.cost
    if not isinstance(share, (int, float)) or not 0 < share < 1 or cost is None:
        return None
    full = cost / share
    return full, full - cost
