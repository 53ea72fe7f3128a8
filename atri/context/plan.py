"""Which history to send: full, last N turns, rolling summary, recall memory. Pure functions.

Inputs are the stored thread (the last message is the new question), the strategy's settings, the
input budget in tokens, a token counter, and what earlier turns left behind (a stored summary,
recalled snippets). The output is what to send plus an explanation for the context view.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field

from ..documents import Excerpt, documents_block
from ..messages import ContextReport, InvalidData, Message, validated
from ..providers import ModelInfo
from ..request import history_messages
from ..tokens import TokenCounter, count_prompt

STRATEGIES = ("full", "last_n", "summary", "recall")
OUTPUT_RESERVE = 4096  # tokens kept free for the answer, at most the model's max output
SUMMARY_INPUT_SHARE = 0.6  # one summary call sees at most this share of the budget


@dataclass(frozen=True)
class ContextSettings:
    """The bounds are the sidebar controls' bounds: a stored or imported value outside them is refused."""

    strategy: Literal["full", "last_n", "summary", "recall"] = "full"
    last_n: Annotated[int, Field(strict=True, ge=1, le=30)] = 6  # turns kept word for word
    summary_share: Annotated[float, Field(strict=True, ge=0.3, le=0.95)] = 0.7  # summarise past this share
    recall_k: Annotated[int, Field(strict=True, ge=1, le=8)] = 3
    recall_with_summary: Annotated[bool, Field(strict=True)] = False

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ContextSettings:
        """Stored settings; ones that don't validate (an old database) fall back to the defaults."""
        try:
            return validated(cls, data or {})
        except InvalidData:
            return cls()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Summary:
    text: str
    through: int  # how many thread messages (from the start) it stands for


@dataclass(frozen=True)
class Recalled:
    index: int  # thread index of the user message that opened the recalled turn
    text: str
    score: float


@dataclass(frozen=True)
class DocumentContext:
    """What the conversation's documents add to this turn: all of them (`whole`) or the best excerpts."""

    excerpts: list[Excerpt]
    whole: bool

    def explain(self) -> dict[str, Any]:
        return {"documents_whole": self.whole,
                "documents": [{"document": e.document, "page": e.page, "label": e.label, "text": e.text, "score": e.score,
                               "similarity": None if e.similarity is None else round(e.similarity, 3)}
                              for e in self.excerpts]}


@dataclass
class ContextPlan:
    strategy: str
    sent: list[Message]  # thread messages sent word for word; the last is the question
    dropped: list[int]  # thread indexes not sent word for word
    system_prompt: str  # the persona, plus the summary and recalled turns when there are any
    input_tokens: int
    budget: int
    summary: Summary | None = None
    recalled: list[Recalled] = field(default_factory=list)
    documents: DocumentContext | None = None
    notes: list[str] = field(default_factory=list)  # i18n keys
    tool_tokens: int = 0  # the schemas of the tools offered, counted in input_tokens
    # The start of system_prompt that is the same every turn (the persona, whole documents): what a provider's
    # explicit cache may keep. A summary, excerpts and recalled turns change, so they come after it.
    stable_prefix: str = ""

    def explain(self) -> ContextReport:
        """What the context view shows, kept with the answer."""
        return {"strategy": self.strategy, "input_tokens": self.input_tokens, "budget": self.budget,
                **({"tool_tokens": self.tool_tokens} if self.tool_tokens else {}),
                "dropped": self.dropped, "summary": self.summary.text if self.summary else None,
                "summary_through": self.summary.through if self.summary else 0,
                "recalled": [{"index": r.index, "text": r.text, "score": round(r.score, 3)} for r in self.recalled],
                **(self.documents.explain() if self.documents else {}), "notes": self.notes}


def input_budget(model: ModelInfo) -> int:
    return max(256, model.context_window - min(model.max_output, OUTPUT_RESERVE))


def turn_starts(thread: list[Message]) -> list[int]:
    """Indexes of the user messages: each opens a turn."""
    return [i for i, m in enumerate(thread) if m.role == "user"]


def turn_text(thread: list[Message], start: int) -> str:
    """A turn as one text: the question and the answers until the next question."""
    parts = [f"User: {thread[start].content}"]
    for message in thread[start + 1:]:
        if message.role == "user":
            break
        if message.content:
            parts.append(f"Assistant: {message.content}")
    return "\n".join(parts)


def last_turns_from(thread: list[Message], turns: int) -> int:
    """Thread index where the last `turns` turns before the question begin (the question always stays)."""
    starts = turn_starts(thread)
    previous = starts[:-1]
    if turns <= 0 or not previous:
        return starts[-1] if starts else 0
    return previous[max(0, len(previous) - turns)]


def with_context(system_prompt: str, summary: Summary | None, recalled: list[Recalled],
                 documents: DocumentContext | None = None) -> str:
    blocks = [system_prompt.strip()] if system_prompt.strip() else []
    if documents and documents.excerpts:
        blocks.append(documents_block(documents.excerpts, documents.whole))
    if summary and summary.text.strip():
        blocks.append(f"Summary of the earlier conversation:\n{summary.text.strip()}")
    if recalled:
        snippets = "\n---\n".join(r.text for r in recalled)
        blocks.append(f"Earlier parts of this conversation that may be relevant:\n{snippets}")
    return "\n\n".join(blocks)


def measure(system_prompt: str, sent: list[Message], count: TokenCounter) -> int:
    messages = history_messages(sent)
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    return count_prompt(messages, count)


def _fit(thread: list[Message], start: int, system_prompt: str, budget: int, count: TokenCounter) -> tuple[int, int, bool]:
    """Move `start` forward turn by turn until the request fits; returns (start, tokens, trimmed)."""
    starts = [s for s in turn_starts(thread) if s >= start]
    trimmed = False
    tokens = measure(system_prompt, thread[start:], count)
    while tokens > budget and len(starts) > 1:
        starts.pop(0)
        start, trimmed = starts[0], True
        tokens = measure(system_prompt, thread[start:], count)
    return start, tokens, trimmed


def plan_context(thread: list[Message], settings: ContextSettings, system_prompt: str, budget: int,
                 count: TokenCounter, summary: Summary | None = None,
                 recalled: list[Recalled] | None = None, documents: DocumentContext | None = None,
                 tool_tokens: int = 0) -> ContextPlan:
    """`tool_tokens`: what the tools offered take of the budget (atri.tokens.schema_tokens): the history gets the rest."""
    notes: list[str] = []
    strategy = settings.strategy
    use_summary = summary if strategy == "summary" or (strategy == "recall" and settings.recall_with_summary) else None
    if use_summary and use_summary.through > len(thread) - 1:
        use_summary = None  # the thread changed under the summary
    use_recalled = list(recalled or []) if strategy == "recall" else []

    if strategy == "full":
        start = 0
    elif strategy == "summary":
        start = use_summary.through if use_summary else 0
    else:
        start = last_turns_from(thread, settings.last_n)
    use_recalled = [r for r in use_recalled if r.index < start]
    prompt = with_context(system_prompt, use_summary, use_recalled, documents)
    new_start, tokens, trimmed = _fit(thread, start, prompt, budget - tool_tokens, count)
    if trimmed:
        notes.append("context_full_fell_back" if strategy == "full" else "context_trimmed")
    dropped = [i for i in range(new_start) if thread[i].role in ("user", "assistant")]
    stable = with_context(system_prompt, None, [], documents if documents and documents.whole else None)
    return ContextPlan(strategy, thread[new_start:], dropped, prompt, tokens + tool_tokens, budget, use_summary,
                       use_recalled, documents, notes, tool_tokens, stable if prompt.startswith(stable) else "")


def summary_due(thread: list[Message], settings: ContextSettings, summary: Summary | None, budget: int,
                count: TokenCounter) -> tuple[int, int] | None:
    """The thread range [start, end) to fold into the summary now, or None when it is not needed yet.

    Due when what would be sent word for word passes `summary_share` of the budget; the older half of
    it (whole turns, never the question) is folded, at most a share of the budget per call.
    """
    if settings.strategy != "summary" and not (settings.strategy == "recall" and settings.recall_with_summary):
        return None
    start = summary.through if summary and summary.through <= len(thread) - 1 else 0
    unsent = thread[start:]
    if measure("", unsent, count) <= settings.summary_share * budget:
        return None
    starts = [s for s in turn_starts(thread) if s > start]
    if len(starts) < 2:
        return None
    half = measure("", unsent, count) / 2
    limit = SUMMARY_INPUT_SHARE * budget
    end = starts[0]
    for candidate in starts[:-1]:  # the question's turn is never folded
        size = measure("", thread[start:candidate], count)
        if size > limit:
            break
        end = candidate
        if size >= half:
            break
    return (start, end) if end > start else None


SUMMARY_INSTRUCTION = (
    "Summarise the conversation below for your own memory, in the language it is written in. "
    "Keep every concrete fact the user stated about themselves (names, dates, places, numbers, preferences) "
    "and every decision made; drop small talk. Write at most 200 words as short bullet points.")


def summary_messages(thread: list[Message], start: int, end: int, previous: Summary | None) -> list[dict[str, str]]:
    lines = []
    if previous and previous.text.strip():
        lines.append(f"Earlier summary:\n{previous.text.strip()}\n")
    for message in thread[start:end]:
        if message.role in ("user", "assistant") and message.content:
            lines.append(f"{'User' if message.role == 'user' else 'Assistant'}: {message.content}")
    return [{"role": "system", "content": SUMMARY_INSTRUCTION}, {"role": "user", "content": "\n".join(lines)}]
