"""Streamed chunks (the JSON objects the provider sent) -> typed events. Pure."""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from .messages import InvalidData, Usage, usage_from_provider
from .tools import ToolCall
from .websearch import searches_in, sources_in

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ContentDelta:
    text: str


@dataclass(frozen=True)
class ContentWasReasoning:
    """A lone </think> arrived: everything shown as answer so far was reasoning."""


@dataclass(frozen=True)
class UsageReport:
    usage: Usage


@dataclass(frozen=True)
class Finish:
    reason: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a tool call: the name (and id) come first, the arguments in pieces, grouped by index."""

    index: int
    name: str  # the name so far (it comes whole in the first piece on DashScope and OpenAI)
    arguments: str  # this piece of the arguments' JSON text


@dataclass(frozen=True)
class ToolCallsReady:
    """The calls of this response, whole, in index order (sent just before its Finish)."""

    calls: tuple[ToolCall, ...]


@dataclass(frozen=True)
class SearchResults:
    """The web pages the provider searched (atri.websearch.sources_in: DashScope's search_info shape)."""

    sources: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class SearchesRun:
    """How many web searches the provider ran (and bills) for this response; 0: it answered without searching."""

    count: int


@dataclass(frozen=True)
class AudioDelta:
    """A piece of spoken answer (Chat Completions' `delta.audio.data`, base64 PCM), decoded."""

    data: bytes


Event = (ReasoningDelta | ContentDelta | ContentWasReasoning | UsageReport | Finish | ToolCallDelta | ToolCallsReady
         | SearchResults | SearchesRun | AudioDelta)


def _audio(delta: dict[str, Any]) -> list[Event]:
    audio = delta.get("audio")
    if not isinstance(audio, dict) or not isinstance(audio.get("data"), str) or not audio["data"]:
        return []
    try:
        return [AudioDelta(base64.b64decode(audio["data"], validate=True))]
    except (binascii.Error, ValueError):
        return []  # a damaged piece is a moment of silence, not a failed answer


def _held_back(text: str, tags: tuple[str, ...]) -> int:
    """Length of the longest tail of text that could be the start of one of the tags."""
    longest = 0
    for tag in tags:
        for size in range(min(len(tag) - 1, len(text)), 0, -1):
            if text.endswith(tag[:size]):
                longest = max(longest, size)
                break
    return longest


class InlineThinkSplitter:
    """Separates <think>…</think> from content, with tags possibly split across chunks."""

    def __init__(self) -> None:
        self._mode = "start"
        self._pending = ""
        self._seen_text = False
        self._answer_begun = False  # newlines right after </think> are dropped


    def feed(self, text: str) -> list[Event]:
        self._pending += text
        events: list[Event] = []
        while self._pending:
            if self._mode == "answer":
                if not self._answer_begun:
                    self._pending = self._pending.lstrip("\n")
                    self._answer_begun = bool(self._pending)
                if self._pending:
                    events.append(ContentDelta(self._pending))
                self._pending = ""
            elif self._mode == "reasoning":
                if not self._take_until(CLOSE_TAG, ReasoningDelta, events):
                    break
                self._mode = "answer"
            else:  # "start": plain content so far, watching for either tag
                if not self._seen_text:
                    stripped = self._pending.lstrip()
                    if stripped.startswith(OPEN_TAG):
                        self._pending = stripped[len(OPEN_TAG):]
                        self._mode = "reasoning"
                        continue
                    if stripped and OPEN_TAG.startswith(stripped):
                        break  # maybe the start of <think>
                if CLOSE_TAG in self._pending:
                    before, after = self._pending.split(CLOSE_TAG, 1)
                    if before:
                        events.append(ContentDelta(before))
                    events.append(ContentWasReasoning())
                    self._mode = "answer"
                    self._pending = after
                    continue
                keep = _held_back(self._pending, (CLOSE_TAG,))
                ready = self._pending[: len(self._pending) - keep]
                if ready:
                    events.append(ContentDelta(ready))
                    self._seen_text = self._seen_text or bool(ready.strip())
                self._pending = self._pending[len(ready):]
                break
        return events

    def _take_until(self, tag: str, kind: type, events: list[Event]) -> bool:
        if tag in self._pending:
            before, self._pending = self._pending.split(tag, 1)
            if before:
                events.append(kind(before))
            return True
        keep = _held_back(self._pending, (tag,))
        ready = self._pending[: len(self._pending) - keep]
        if ready:
            events.append(kind(ready))
        self._pending = self._pending[len(ready):]
        return False

    def close(self) -> list[Event]:
        rest, self._pending = self._pending, ""
        if not rest:
            return []
        return [ReasoningDelta(rest) if self._mode == "reasoning" else ContentDelta(rest)]


class ChunkParser:
    """Turns chunk dicts into events; reasoning may come in three shapes (see DESIGN.md)."""

    def __init__(self, inline_tags: bool = False) -> None:
        self._splitter = InlineThinkSplitter() if inline_tags else None
        self._calls: dict[int, dict[str, str]] = {}  # index -> id, name, arguments so far

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        sources = sources_in(chunk)
        if sources:
            events.append(SearchResults(tuple(sources)))
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                events.append(ReasoningDelta(reasoning))
            content = delta.get("content")
            if isinstance(content, str) and content:
                events.extend(self._splitter.feed(content) if self._splitter else [ContentDelta(content)])
            events.extend(_audio(delta))
            for piece in delta.get("tool_calls") or []:
                events.extend(self._tool_piece(piece))
            if isinstance(choice.get("finish_reason"), str) and choice["finish_reason"]:
                events.extend(self.close())
                if self._calls:
                    events.append(ToolCallsReady(self._whole_calls()))
                events.append(Finish(choice["finish_reason"]))
        if isinstance(chunk.get("usage"), dict):
            searches = searches_in(chunk["usage"])
            if searches is not None:
                events.append(SearchesRun(searches))
            try:
                events.append(UsageReport(usage_from_provider(chunk["usage"])))
            except InvalidData:  # a malformed usage object: the answer stands, usage is counted instead
                pass
        return events

    def close(self) -> list[Event]:
        return self._splitter.close() if self._splitter else []

    def _tool_piece(self, piece: Any) -> list[Event]:
        """Accumulate one tool_calls delta. A server that sends no index gets one: a new id is a new call."""
        if not isinstance(piece, dict):
            return []
        function = piece.get("function") if isinstance(piece.get("function"), dict) else {}
        index = piece.get("index")
        if not isinstance(index, int):
            known = next((i for i, call in self._calls.items() if piece.get("id") and call["id"] == piece.get("id")), None)
            index = known if known is not None else (len(self._calls) if piece.get("id") or not self._calls
                                                     else max(self._calls))
        call = self._calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
        if isinstance(piece.get("id"), str) and piece["id"]:
            call["id"] = piece["id"]
        name, arguments = function.get("name"), function.get("arguments")
        if isinstance(name, str) and name and name != call["name"]:  # some servers repeat it in every piece
            call["name"] += name
        arguments = arguments if isinstance(arguments, str) else ""
        call["arguments"] += arguments
        return [ToolCallDelta(index, call["name"], arguments)]

    def _whole_calls(self) -> tuple[ToolCall, ...]:
        calls = tuple(ToolCall(call["id"] or f"call_{index}", call["name"], call["arguments"])
                      for index, call in sorted(self._calls.items()))
        self._calls = {}
        return calls

