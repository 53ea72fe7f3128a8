"""Extraction to validated JSON: the tutorial's train-ticket example, made dependable.

An image (or a text) and what to take from it (field names, or a JSON Schema) go to the model in JSON
mode, with the schema in the instruction. The answer is parsed, repaired where a library can
(`json_repair`: fences, trailing commas, single quotes, a cut-off end) and validated against the
schema (`jsonschema`). When it does not validate, the model is asked once more, with the errors.
Several sources run at once, each through atri.calls.asend.
"""
from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .calls import Target, asend
from .messages import ChatOptions, Message
from .pricing import request_cost
from .request import build_request
from .schemas import ExtractInputError, Reading, read_answer_isolated
from .turn import Turn

# The tutorial's example: a train ticket with its invoice (DashScope's own demo image).
TRAIN_TICKET_URL = "http://duguang-labelling.oss-cn-shanghai.aliyuncs.com/demo_ocr/receipt_zh_demo.jpg"
TRAIN_TICKET_FIELDS = ("ticket.travel_date\nticket.trains\nticket.seat_num\nticket.arrival_site\nticket.price\n"
                       "invoice.invoice_code\ninvoice.invoice_number")
TYPES = ("string", "number", "integer", "boolean", "date")
MAX_FIELDS = 100
MAX_TEXT_CHARS = 100_000
MAX_SOURCES = 20
DEFAULT_CONCURRENCY = 4
_NAME = re.compile(r"^[^\s.{}\[\]\"'`]{1,64}$")


@dataclass(frozen=True)
class FieldSpec:
    name: str  # dots nest: "ticket.price" is the price inside the ticket object
    type: str = "string"
    description: str = ""
    required: bool = True


def fields_from_names(text: str) -> list[FieldSpec]:
    """`ticket.travel_date, ticket.price` (commas or lines) → string fields, nested by their dots."""
    names = [piece.strip() for piece in re.split(r"[,\n，、]+", text) if piece.strip()]
    return check_fields([FieldSpec(name) for name in names])


def check_fields(fields: list[FieldSpec]) -> list[FieldSpec]:
    if not fields:
        raise ExtractInputError("extract_fields_empty")
    if len(fields) > MAX_FIELDS:
        raise ExtractInputError("extract_too_many_fields", limit=MAX_FIELDS)
    seen: set[str] = set()
    for spec in fields:
        parts = spec.name.split(".")
        if not all(_NAME.match(part) for part in parts):
            raise ExtractInputError("extract_field_bad", name=spec.name[:80])
        if spec.type not in TYPES:
            raise ExtractInputError("extract_field_type", name=spec.name[:80], types=", ".join(TYPES))
        prefixes = {".".join(parts[:i]) for i in range(1, len(parts))}
        if spec.name in seen or prefixes & seen or any(other.startswith(spec.name + ".") for other in seen):
            raise ExtractInputError("extract_field_twice", name=spec.name[:80])
        seen.add(spec.name)
    return fields


def _leaf(spec: FieldSpec) -> dict[str, Any]:
    kind = "string" if spec.type == "date" else spec.type
    leaf: dict[str, Any] = {"type": [kind, "null"]}  # null: not in the source, rather than made up
    if spec.type == "date":
        leaf["format"] = "date"
    if spec.description:
        leaf["description"] = spec.description
    return leaf


def schema_from_fields(fields: list[FieldSpec]) -> dict[str, Any]:
    """A JSON Schema of nested objects; every field required (with null allowed when it is not found)."""
    schema: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    for spec in check_fields(fields):
        node = schema
        *parents, last = spec.name.split(".")
        for part in parents:
            if part not in node["properties"]:
                node["properties"][part] = {"type": "object", "properties": {}, "required": []}
                node["required"].append(part)
            node = node["properties"][part]
        node["properties"][last] = _leaf(spec)
        if spec.required:
            node["required"].append(last)
    return schema


def train_ticket_schema() -> dict[str, Any]:
    return schema_from_fields(fields_from_names(TRAIN_TICKET_FIELDS))


def instruction(schema: dict[str, Any], has_image: bool) -> str:
    where = "the image" if has_image else "the text below"
    return (f"Extract the information from {where}. Reply with one JSON object only, with no Markdown "
            "fences, that matches this JSON Schema. Copy values as they are written; use null for a "
            "field you cannot find rather than guessing.\n\nJSON Schema:\n"
            + json.dumps(schema, ensure_ascii=False, indent=1))


# --- running ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    label: str  # a file name, a URL or "text"
    text: str = ""
    image: str | None = None  # an http(s) or data:image URL (atri.images checked it)
    thumbnail: str = ""


@dataclass
class Extraction:
    source: Source
    raw: str = ""
    reading: Reading | None = None
    retried: bool = False
    error_kind: str | None = None
    error_detail: str | None = None
    notes: list[str] = field(default_factory=list)
    ttft_s: float | None = None
    total_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    currency: str | None = None

    @property
    def status(self) -> str:
        if self.error_kind:
            return "failed"
        return "valid" if self.reading and self.reading.valid else "invalid"

    @property
    def data(self) -> dict[str, Any] | None:
        return self.reading.data if self.reading else None

    def add(self, turn: Turn, target: Target) -> None:
        facts = turn.to_message(ChatOptions(target.connection.provider.id, target.model.id)).facts
        if self.ttft_s is None and facts.ttft_s is not None:
            self.ttft_s = facts.ttft_s
        self.total_s += facts.total_s or 0.0
        self.notes += [n for n in facts.notes if n not in self.notes]
        if facts.usage:
            self.prompt_tokens += facts.usage.prompt_tokens
            self.completion_tokens += facts.usage.completion_tokens
            if target.price:
                self.cost = (self.cost or 0.0) + request_cost(target.price, facts.usage, bool(turn.reasoning))
                self.currency = target.price.currency


def check_sources(sources: list[Source], target: Target) -> None:
    if not sources:
        raise ExtractInputError("extract_no_input")
    if len(sources) > MAX_SOURCES:
        raise ExtractInputError("extract_too_many", limit=MAX_SOURCES)
    if any(s.image for s in sources) and not target.model.vision:
        raise ExtractInputError("extract_needs_vision", model=target.model.id)
    for source in sources:
        if len(source.text) > MAX_TEXT_CHARS:
            raise ExtractInputError("extract_text_too_long", limit=MAX_TEXT_CHARS)


def _retry_request(reading: Reading) -> str:
    problems = [reading.parse_error] if reading.data is None else reading.errors
    return ("Your answer does not match the JSON Schema:\n- " + "\n- ".join(p for p in problems if p)
            + "\nReply again with the corrected JSON object only.")


async def extract_one(target: Target, source: Source, schema: dict[str, Any]) -> Extraction:
    """One source: ask in JSON mode (thinking off: DashScope refuses JSON while thinking), read the answer,
    and ask once more with the validation errors when it does not match."""
    provider = target.connection.provider
    options = ChatOptions(provider.id, target.model.id, temperature=0.0, thinking=False, json_mode=True)
    text = instruction(schema, bool(source.image))
    if source.text:
        text += "\n\nText:\n" + source.text
    history = [Message("user", text, images=[source.image] if source.image else [])]
    result = Extraction(source)
    for attempt in range(2):
        plan = build_request(history, options, target.model, provider)
        turn = await asend(target.connection, plan, count=target.count)
        result.add(turn, target)
        if turn.error is not None:
            if result.reading is None:  # the first ask failed: nothing to show
                result.error_kind, result.error_detail = turn.error.kind, turn.error.detail
            break
        reading = await asyncio.to_thread(read_answer_isolated, turn.content, schema)
        if result.reading is None or reading.badness() < result.reading.badness():
            result.raw, result.reading = turn.content, reading
        if result.reading.valid or attempt == 1:
            break
        result.retried = True
        history += [Message("assistant", turn.content), Message("user", _retry_request(reading))]
    return result


async def extract_many(target: Target, sources: list[Source], schema: dict[str, Any],
                       concurrency: int = DEFAULT_CONCURRENCY,
                       on_done: Callable[[int, Extraction], None] = lambda index, extraction: None) -> list[Extraction]:
    """Every source at once (up to `concurrency` at a time); results in the order of the sources."""
    check_sources(sources, target)
    limit = asyncio.Semaphore(max(1, concurrency))

    async def one(index: int, source: Source) -> Extraction:
        async with limit:
            try:
                extraction = await extract_one(target, source, schema)
            except Exception as error:  # noqa: BLE001 - one source's surprise must not lose the others
                extraction = Extraction(source, error_kind="unknown", error_detail=type(error).__name__)
        on_done(index, extraction)
        return extraction

    return list(await asyncio.gather(*(one(i, s) for i, s in enumerate(sources))))


# --- tables and downloads ---------------------------------------------------------------------------------


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """{"ticket": {"price": "8.00"}} → {"ticket.price": "8.00"}; lists stay JSON text in one cell."""
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(data, list):
        return {prefix: json.dumps(data, ensure_ascii=False)}
    return {prefix: data}


def records(extractions: list[Extraction]) -> list[dict[str, Any]]:
    return [{"source": e.source.label, "status": e.status, "data": e.data, "errors": e.reading.errors if e.reading else [],
             "repaired": bool(e.reading and e.reading.repaired), "retried": e.retried, "raw": e.raw,
             "error_kind": e.error_kind, "error_detail": e.error_detail} for e in extractions]


def to_json(extractions: list[Extraction]) -> bytes:
    return json.dumps(records(extractions), ensure_ascii=False, indent=2).encode("utf-8")


def to_csv(extractions: list[Extraction]) -> bytes:
    """One row per source: its fields as columns (nested names joined by dots), then status and errors."""
    flat = [flatten(e.data or {}) for e in extractions]
    columns = list(dict.fromkeys(key for row in flat for key in row))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["source", *columns, "status", "errors"])
    for extraction, row in zip(extractions, flat):
        problems = extraction.reading.errors if extraction.reading else []
        if extraction.error_kind:
            problems = [f"{extraction.error_kind}: {extraction.error_detail or ''}".strip(": ")]
        writer.writerow([extraction.source.label, *["" if row.get(c) is None else row.get(c) for c in columns],
                         extraction.status, "; ".join(problems)])
    return buffer.getvalue().encode("utf-8-sig")
