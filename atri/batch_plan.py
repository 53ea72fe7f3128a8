"""What a Batch run asks: prompts from a table and a template, or one prompt swept across options.

Everything here is checked before a run starts (sizes a visitor controls are bounded: rows, prompt length,
sweep size, concurrency); atri.batch runs what it builds.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .messages import ChatOptions
from .providers import ModelInfo, Thinking
from .tables import MAX_ROWS, BatchInputError, Table

MAX_PROMPT_CHARS = 100_000
MAX_CONCURRENCY = 32
DEFAULT_CONCURRENCY = 8
MAX_SWEEP = 48


_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


def template_fields(template: str) -> list[str]:
    """The column names a template like `Translate into English: {text}` fills in (`{{`, `}}`: braces)."""
    return [m.group(1).strip() for m in _FIELD.finditer(template) if m.group(1) is not None]


def fill(template: str, row: dict[str, str]) -> str:
    """Plain substitution, never str.format: a template from a visitor must not reach attributes."""

    def replace_field(match: re.Match[str]) -> str:
        if match.group(0) in ("{{", "}}"):
            return match.group(0)[0]
        return row[match.group(1).strip()]

    return _FIELD.sub(replace_field, template)


def prompts_from(table: Table, template: str = "", column: str | None = None) -> list[tuple[str, dict[str, str]]]:
    """(prompt, the row's values) for every row: the template filled in, or the prompt column as it is."""
    template = template.strip()
    if template:
        fields = template_fields(template)
        if not fields:
            raise BatchInputError("batch_template_no_field", columns=", ".join(table.columns))
        unknown = [f for f in fields if f not in table.columns]
        if unknown:
            raise BatchInputError("batch_template_unknown", field=unknown[0], columns=", ".join(table.columns))
        prompts = [(fill(template, row), row) for row in table.rows]
    else:
        column = column or _prompt_column(table)
        if column not in table.columns:
            raise BatchInputError("batch_no_prompt_column", columns=", ".join(table.columns))
        prompts = [(row[column], row) for row in table.rows]
    prompts = [(prompt.strip(), row) for prompt, row in prompts if prompt.strip()]
    if not prompts:
        raise BatchInputError("batch_no_prompts")
    if len(prompts) > MAX_ROWS:
        raise BatchInputError("batch_too_many_rows", limit=MAX_ROWS)
    for number, (prompt, _) in enumerate(prompts, 1):
        if len(prompt) > MAX_PROMPT_CHARS:
            raise BatchInputError("batch_prompt_too_long", row=number, limit=MAX_PROMPT_CHARS)
    return prompts


def _prompt_column(table: Table) -> str | None:
    if len(table.columns) == 1:
        return table.columns[0]
    return next((c for c in table.columns if c.strip().lower() in ("prompt", "text", "question", "提示词", "问题")), None)


# --- what to run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """The options one row is asked with (a sweep varies them)."""

    temperature: float | None = None
    thinking: bool = False
    thinking_budget: int | None = None

    def label(self) -> str:
        parts = [f"T={self.temperature:g}" if self.temperature is not None else "T=default",
                 "thinking" if self.thinking else "no thinking"]
        if self.thinking and self.thinking_budget:
            parts.append(f"budget {self.thinking_budget}")
        return " · ".join(parts)


@dataclass(frozen=True)
class RowSpec:
    prompt: str
    variant: Variant
    values: dict[str, str] = field(default_factory=dict)  # the table row it came from


@dataclass(frozen=True)
class BatchSpec:
    kind: str  # "batch" | "sweep"
    provider_id: str
    model_id: str
    rows: tuple[RowSpec, ...]
    concurrency: int = DEFAULT_CONCURRENCY
    system_prompt: str = ""
    json_mode: bool = False

    def options(self, variant: Variant) -> ChatOptions:
        return ChatOptions(self.provider_id, self.model_id, temperature=variant.temperature, thinking=variant.thinking,
                           thinking_budget=variant.thinking_budget if variant.thinking else None,
                           json_mode=self.json_mode, system_prompt=self.system_prompt)

    def title(self) -> str:
        first = self.rows[0].prompt.split("\n", 1)[0] if self.rows else ""
        first = first if len(first) <= 60 else first[:59] + "…"
        return first if self.kind == "sweep" or len(self.rows) == 1 else f"{first} (+{len(self.rows) - 1})"


def check_concurrency(value: int) -> int:
    if not 1 <= value <= MAX_CONCURRENCY:
        raise BatchInputError("batch_concurrency_range", limit=MAX_CONCURRENCY)
    return value


def batch_spec(provider_id: str, model_id: str, prompts: list[tuple[str, dict[str, str]]], variant: Variant, *,
               concurrency: int = DEFAULT_CONCURRENCY, system_prompt: str = "", json_mode: bool = False) -> BatchSpec:
    rows = tuple(RowSpec(prompt, variant, values) for prompt, values in prompts)
    return BatchSpec("batch", provider_id, model_id, rows, check_concurrency(concurrency), system_prompt, json_mode)


def parse_numbers(text: str, kind: type = float) -> list[Any]:
    """`0, 0.7 1.2` → [0.0, 0.7, 1.2]; raises BatchInputError naming the piece that is not a number."""
    values = []
    for piece in re.split(r"[,\s;，、；]+", text.strip()):
        if not piece:
            continue
        try:
            value = kind(piece)
        except ValueError:
            raise BatchInputError("batch_not_a_number", value=piece[:20]) from None
        if value not in values:
            values.append(value)
    return values


def sweep_spec(provider_id: str, model: ModelInfo, prompt: str, temperatures: list[float], thinking: list[bool],
               budgets: list[int], *, concurrency: int = DEFAULT_CONCURRENCY, system_prompt: str = "") -> BatchSpec:
    """One prompt across temperatures × thinking on/off × budgets (budgets only where thinking is on)."""
    if not prompt.strip():
        raise BatchInputError("batch_no_prompts")
    for temperature in temperatures:
        if not 0 <= temperature <= 2:
            raise BatchInputError("batch_temperature", value=f"{temperature:g}")
    for budget in budgets:
        if not 1 <= budget <= 1_000_000 or int(budget) != budget:
            raise BatchInputError("batch_budget", value=str(budget))
    if True in thinking and model.thinking != Thinking.HYBRID:
        raise BatchInputError("batch_sweep_cannot_switch", model=model.id)
    variants = []
    for temperature in temperatures or [None]:
        for think in thinking or [False]:
            for budget in (budgets or [None]) if think else [None]:
                variants.append(Variant(temperature, think, int(budget) if budget else None))
    if len(variants) > MAX_SWEEP:
        raise BatchInputError("batch_sweep_too_big", count=len(variants), limit=MAX_SWEEP)
    rows = tuple(RowSpec(prompt.strip(), v) for v in variants)
    return BatchSpec("sweep", provider_id, model.id, rows, check_concurrency(concurrency), system_prompt)
