"""Storage in SQL, by resource: a SQLite file by default, PostgreSQL when ATRI_DATABASE_URL names one.

Every read and write is scoped by owner: a conversation id belonging to someone else finds nothing.
A conversation is a tree of messages: editing a question or regenerating an answer adds a sibling, and
"1 / 2" switches between siblings, each with its own continuation. `Store` is every resource's
store in one object, as the app uses it; each module imports only what its resource needs.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..context import Memory, Summary
from ..documents import StoredChunk
from .batch_runs import INTERRUPTED_RUN, RUNNING_RUN, BatchRuns
from .conversations import EMPTY, ConversationInfo, PlaceTaken, Snapshot, StoredMessage
from .counters import CounterClaim, Counters
from .deleting import Deleting
from .documents import DocumentInfo, Documents
from .engine import SchemaProblem, StorageError, make_engine
from .rows import STREAMING, Base, clip_title, conversation_settings, new_id, now, storable, title_from
from .shares import SharedChat, ShareInfo, Shares
from .transfer import EXPORT_FORMAT, EXPORT_VERSION, MAX_IMPORT_MESSAGES, BadImport, Transfer, parse_export
from .usage import Usage, UsageTotals


class Store(Shares, Transfer, Deleting, Documents, Counters, BatchRuns, Usage):
    """Conversations, documents, quota counters and secrets, batch runs, usage, export and import, shares."""

    def context_source(self, owner: str, conversation_id: str) -> StoredContext:
        return StoredContext(self, owner, conversation_id)


@dataclass(frozen=True)
class StoredContext:
    """One stored conversation as the context strategies see it (atri.context.ContextSource)."""

    store: Store
    owner: str
    conversation_id: str

    def summary(self) -> Summary | None:
        info = self.store.conversation(self.owner, self.conversation_id)
        return info.summary if info else None

    def save_summary(self, summary: Summary) -> None:
        self.store.save_summary(self.owner, self.conversation_id, summary)

    def memories(self, embedder: str) -> list[Memory]:
        return self.store.memories(self.owner, self.conversation_id, embedder)

    def add_memories(self, embedder: str, memories: list[Memory]) -> None:
        self.store.add_memories(self.owner, self.conversation_id, embedder, memories)

    def document_tokens(self) -> int:
        return self.store.document_tokens(self.owner, self.conversation_id, self._shown())

    def document_chunks(self, embedder: str) -> list[StoredChunk]:
        return self.store.document_chunks(self.owner, self.conversation_id, embedder, self._shown())

    def _shown(self) -> list[int]:
        """The branch the answer follows: documents of questions on other branches stay out of it."""
        return [item.id for item in self.store.snapshot(self.owner, self.conversation_id).thread]


__all__ = ["EMPTY", "EXPORT_FORMAT", "EXPORT_VERSION", "INTERRUPTED_RUN", "MAX_IMPORT_MESSAGES", "RUNNING_RUN",
           "STREAMING", "BadImport", "Base", "ConversationInfo", "CounterClaim", "DocumentInfo",
           "PlaceTaken", "SchemaProblem", "ShareInfo", "SharedChat", "Snapshot", "StorageError", "Store", "StoredContext", "StoredMessage",
           "UsageTotals", "clip_title", "conversation_settings", "make_engine", "new_id", "now", "parse_export",
           "storable", "title_from"]
