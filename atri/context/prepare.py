"""The context of one turn: bring the summary and the memories up to date as the strategy needs,
then plan what to send. Works over a small interface (ContextSource) that the store implements for a
stored conversation and the benchmark implements in memory."""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..documents import StoredChunk, search, sent_whole, whole_pages
from ..embeddings import EMBEDDER_NAME, Embedder, default_embedder
from ..errors import ChatError
from ..messages import Message
from ..tokens import TokenCounter
from .plan import ContextPlan, ContextSettings, DocumentContext, Summary, last_turns_from, plan_context, summary_due
from .recall import Memory, new_memories, recall

# (thread, (start, end) of the messages to fold in, the previous summary) -> the new summary's text;
# raises ChatError when the model could not write one.
Summarise = Callable[[list[Message], tuple[int, int], Summary | None], str]


class ContextSource(Protocol):
    """What the strategies keep between turns of one conversation."""

    def summary(self) -> Summary | None: ...

    def save_summary(self, summary: Summary) -> None: ...

    def memories(self, embedder: str) -> list[Memory]: ...

    def add_memories(self, embedder: str, memories: list[Memory]) -> None: ...

    def document_tokens(self) -> int: ...

    def document_chunks(self, embedder: str) -> list[StoredChunk]: ...

EXCERPTS_SHARE = 0.4  # excerpts from documents take at most this share of the input budget


def prepare_context(source: ContextSource, thread: list[Message], settings: ContextSettings, system_prompt: str,
                    budget: int, count: TokenCounter, summarise: Summarise,
                    on_summarising: Callable[[], None] = lambda: None, embedder: Embedder | None = None,
                    tool_tokens: int = 0) -> ContextPlan:
    """`tool_tokens`: what the schemas of the tools offered take of the budget (atri.tokens.schema_tokens)."""
    summary, notes = _updated_summary(source, thread, settings, budget, count, summarise, on_summarising)
    recalled = []
    if settings.strategy == "recall":
        embedder = embedder or default_embedder()
        memories = source.memories(embedder.name)
        fresh = new_memories(thread, {m.key for m in memories}, embedder)
        if fresh:
            source.add_memories(embedder.name, fresh)
        recalled = recall(thread[-1].content, thread, memories + fresh, embedder, settings.recall_k,
                          before=last_turns_from(thread, settings.last_n))
    documents = _documents(source, thread[-1].content if thread else "", budget, count, embedder)
    plan = plan_context(thread, settings, system_prompt, budget, count, summary, recalled, documents, tool_tokens)
    plan.notes = notes + plan.notes
    return plan


def _documents(source: ContextSource, question: str, budget: int, count: TokenCounter,
               embedder: Embedder | None) -> DocumentContext | None:
    """The conversation's documents for this question: whole when they are short, else the best excerpts
    that fit their share of the budget."""
    tokens = source.document_tokens()
    if not tokens:
        return None
    chunks = source.document_chunks(embedder.name if embedder else EMBEDDER_NAME)
    if sent_whole(tokens, budget):
        return DocumentContext(whole_pages(chunks), whole=True)
    if all(chunk.vector is not None for chunk in chunks):  # else words alone rank: no model needed yet
        embedder = embedder or default_embedder()
    excerpts, room = [], EXCERPTS_SHARE * budget
    for excerpt in search(question, chunks, embedder):
        room -= count(excerpt.text)
        if room < 0:
            break
        excerpts.append(excerpt)
    return DocumentContext(excerpts, whole=False)


def _updated_summary(source: ContextSource, thread: list[Message], settings: ContextSettings, budget: int,
                     count: TokenCounter, summarise: Summarise,
                     on_summarising: Callable[[], None]) -> tuple[Summary | None, list[str]]:
    summary = source.summary()
    due = summary_due(thread, settings, summary, budget, count)
    while due:
        on_summarising()
        try:
            summary = Summary(summarise(thread, due, summary), due[1])
        except ChatError:
            return summary, ["summary_failed"]
        source.save_summary(summary)
        due = summary_due(thread, settings, summary, budget, count)
    return summary, []
