"""One answer as data: the Turn that grows from a request's stream, and the record it leaves (atri.calls sends)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import ChatError
from .messages import AnswerFacts, ChatOptions, Message, Usage
from .metering import Admitted
from .request import RequestPlan
from .settings import Connection
from .stream import (
    AudioDelta,
    ChunkParser,
    ContentDelta,
    ContentWasReasoning,
    Event,
    Finish,
    ReasoningDelta,
    SearchesRun,
    SearchResults,
    ToolCallDelta,
    ToolCallsReady,
    UsageReport,
)
from .tokens import TokenCounter, count_prompt, rough_count
from .tools import ToolCall, ToolStep
from .websearch import MAX_SOURCES

MAX_AUDIO_BYTES = 24_000 * 2 * 600  # ten minutes of 24 kHz 16-bit speech: a provider that never stops is cut here
QUOTA_CUT_NOTE = "note_quota_cut"  # an answer cut where the quota or budget left ended


@dataclass
class Turn:
    """The answer as it grows; the page redraws from it after every event."""

    model: str
    request: dict[str, Any]
    notes: list[str]
    started: float = field(default_factory=time.perf_counter)
    content: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    first_token_at: float | None = None
    answer_started_at: float | None = None
    ended_at: float | None = None
    error: ChatError | None = None
    response_id: str | None = None
    response_model: str | None = None
    context: dict[str, Any] | None = None
    tool_steps: list[ToolStep] = field(default_factory=list)  # every tool call run so far, in order
    calls: list[ToolCall] = field(default_factory=list)  # the calls the latest response asked for
    calling: str | None = None  # the tool being asked for or run right now (for the live view)
    earlier_usage: Usage | None = None  # what the earlier requests of a tool loop used
    sources: list[dict[str, Any]] = field(default_factory=list)  # web search results the provider sent
    web_searches: int | None = None  # searches the provider ran for this answer, when it said
    audio: bytearray = field(default_factory=bytearray)  # spoken output (PCM), up to MAX_AUDIO_BYTES

    @property
    def thinking_now(self) -> bool:
        return bool(self.reasoning) and self.answer_started_at is None and self.ended_at is None

    def apply(self, event: Event) -> None:
        now = time.perf_counter()
        if isinstance(event, (ReasoningDelta, ContentDelta)) and self.first_token_at is None:
            self.first_token_at = now
        if isinstance(event, ReasoningDelta):
            self.reasoning += event.text
        elif isinstance(event, ContentDelta):
            if self.answer_started_at is None and event.text.strip():
                self.answer_started_at = now
            self.content += event.text
        elif isinstance(event, ContentWasReasoning):
            self.reasoning, self.content = self.reasoning + self.content, ""
            self.answer_started_at = None
        elif isinstance(event, UsageReport):
            self.usage = add_usage(self.earlier_usage, event.usage)
        elif isinstance(event, Finish):
            self.finish_reason = event.reason
        elif isinstance(event, ToolCallDelta):
            self.calling = event.name or self.calling
        elif isinstance(event, ToolCallsReady):
            self.calls = list(event.calls)
        elif isinstance(event, SearchResults):
            known = {source["url"] for source in self.sources}
            fresh = [source for source in event.sources if source["url"] not in known]
            self.sources += fresh[:max(0, MAX_SOURCES - len(self.sources))]
        elif isinstance(event, SearchesRun):
            self.web_searches = (self.web_searches or 0) + event.count
        elif isinstance(event, AudioDelta):
            self.audio += event.data[:max(0, MAX_AUDIO_BYTES - len(self.audio))]

    def elapsed(self) -> float:
        return (self.ended_at or time.perf_counter()) - self.started

    def thinking_seconds(self) -> float | None:
        if not self.reasoning or self.first_token_at is None:
            return None
        end = self.answer_started_at or self.ended_at or time.perf_counter()
        return end - self.first_token_at

    def to_message(self, options: ChatOptions) -> Message:
        facts = AnswerFacts(
            model=self.response_model or self.model,
            finish_reason=self.finish_reason,
            ttft_s=None if self.first_token_at is None else self.first_token_at - self.started,
            total_s=self.elapsed(),
            thinking_s=self.thinking_seconds(),
            usage=self.usage,
            error_kind=self.error.kind if self.error else (None if self.finish_reason else "interrupted"),
            error_detail=self.error.detail if self.error else None,
            notes=list(self.notes),
            request=self.request,
            response_id=self.response_id,
            context=self.context,
            tool_steps=[step.to_dict() for step in self.tool_steps] or None,
            sources=list(self.sources) or None,
            web_searches=self.web_searches,
        )
        return Message("assistant", self.content, reasoning=self.reasoning, facts=facts, options=options)


def response_record(message: Message) -> dict[str, Any]:
    """A stored answer in the shape of the SDK's ChatCompletion.model_dump(), for the raw view.
    Rebuilt when shown: storing it would keep the answer and its reasoning twice."""
    facts = message.facts
    body: dict[str, Any] = {"role": "assistant", "content": message.content}
    if message.reasoning:
        body["reasoning_content"] = message.reasoning
    if facts and facts.tool_steps:  # the calls this answer made on the way, with what each returned
        body["atri_tool_steps"] = facts.tool_steps
    if facts and facts.sources:
        body["atri_search_results"] = facts.sources
    if facts and facts.web_searches is not None:
        body["atri_web_searches"] = facts.web_searches
    usage = None
    if facts and facts.usage:
        tokens = facts.usage
        usage = {
            "prompt_tokens": tokens.prompt_tokens,
            "completion_tokens": tokens.completion_tokens,
            "total_tokens": tokens.prompt_tokens + tokens.completion_tokens,
            "completion_tokens_details": {"reasoning_tokens": tokens.reasoning_tokens},
            "prompt_tokens_details": {"cached_tokens": tokens.cached_tokens},
        }
        if tokens.estimated:
            usage["estimated_by_atri"] = True
    return {
        "id": facts.response_id if facts else None,
        "object": "chat.completion",
        "model": facts.model if facts else None,
        "choices": [{"index": 0, "finish_reason": facts.finish_reason if facts else None, "message": body}],
        "usage": usage,
    }


def add_usage(earlier: Usage | None, later: Usage) -> Usage:
    """Two requests' usage as one answer's (a tool loop sends several)."""
    if earlier is None:
        return later
    return Usage(prompt_tokens=earlier.prompt_tokens + later.prompt_tokens,
                 completion_tokens=earlier.completion_tokens + later.completion_tokens,
                 reasoning_tokens=earlier.reasoning_tokens + later.reasoning_tokens,
                 cached_tokens=earlier.cached_tokens + later.cached_tokens,
                 estimated=earlier.estimated or later.estimated)


def public_url(url: str) -> str:
    """The URL without any user:password@ part (some gateways take credentials that way)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))


def estimate_usage(turn: Turn, count: TokenCounter) -> Usage:
    return Usage(
        prompt_tokens=count_prompt(turn.request.get("messages", []), count),
        completion_tokens=count(turn.content) + count(turn.reasoning),
        reasoning_tokens=count(turn.reasoning),
        estimated=True,
    )


class TurnFollower:
    """Turns the chunks of an answer's requests into one growing Turn (atri.calls sends the requests): a pure
    accumulator, the same for the sync and async faces."""

    def __init__(self, conn: Connection, plan: RequestPlan, count: TokenCounter | None,
                 context: dict[str, Any] | None) -> None:
        self._conn = conn
        self.turn = Turn(model=plan.kwargs["model"], request=self._record(plan.kwargs), notes=plan.notes,
                         context=context)
        # A model that opens with reasoning but no <think> tag is caught by its lone </think> (ContentWasReasoning).
        self._inline_tags = conn.provider.inline_think_tags
        self._parser = ChunkParser(inline_tags=self._inline_tags)
        self.count = count or rough_count
        self.admission: Admitted | None = None  # the latest request's, once it is sent
        self._round = 0
        self._marks = (0, 0)  # where the latest request's content and reasoning begin

    def _record(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"base_url": public_url(self._conn.base_url), **kwargs}

    def sending(self, admission: Admitted | None, kwargs: dict[str, Any]) -> None:
        """A request goes out under `admission`, as `kwargs` (with the output cap it reserved). The answer's
        record is its first request (a tool loop's later ones differ only by the calls and results they carry)."""
        self.admission = admission
        self._marks = (len(self.turn.content), len(self.turn.reasoning))
        if self._round == 0:
            self.turn.request = self._record(kwargs)

    def feed(self, chunk: dict[str, Any]) -> Turn:
        turn = self.turn
        turn.response_id = turn.response_id or chunk.get("id")
        turn.response_model = turn.response_model or chunk.get("model")
        for event in self._parser.feed(chunk):
            turn.apply(event)
        return turn

    def round_text(self) -> str:
        """What the latest request's answer has said so far (content and reasoning)."""
        content_mark, reasoning_mark = self._marks
        return self.turn.content[content_mark:] + self.turn.reasoning[reasoning_mark:]

    def next_round(self) -> None:
        """The next request of a tool loop: a fresh parser, the usage so far kept aside to add up."""
        turn = self.turn
        self._round += 1
        self._parser = ChunkParser(inline_tags=self._inline_tags)
        turn.earlier_usage = turn.usage
        turn.calls, turn.calling, turn.finish_reason = [], None, None

    def finish(self, error: ChatError | None = None) -> Turn:
        turn = self.turn
        turn.error = error
        for event in self._parser.close():
            turn.apply(event)
        turn.ended_at = time.perf_counter()
        if turn.usage is None and (turn.content or turn.reasoning or turn.error is None):
            turn.usage = estimate_usage(turn, self.count)
        if turn.finish_reason == "length" and self._cut_by_quota() and QUOTA_CUT_NOTE not in turn.notes:
            turn.notes.append(QUOTA_CUT_NOTE)
        return turn

    def _cut_by_quota(self) -> bool:
        """Whether the latest request was sent asking for less output than it wanted, for lack of quota."""
        return self.admission is not None and self.admission.lowered
