"""Documents attached to a conversation, their chunks and vectors."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, or_, select, update

from ..documents import Chunk, StoredChunk
from ..messages import MAX_NAME
from .engine import Database
from .rows import DocumentChunkRow, DocumentRow, MessageRow, mark_changed, now, storable


@dataclass(frozen=True)
class DocumentInfo:
    id: int
    name: str
    message_id: int | None
    pages: int | None
    tokens: int
    chunks: int
    embedded: int  # chunks with a vector from the current embedder


class Documents(Database):
    def add_document(self, owner: str, conversation_id: str, name: str, message_id: int | None, pages: int | None,
                     tokens: int, chunks: list[Chunk]) -> int:
        with self._session() as session:
            conversation = self._owned(session, owner, conversation_id)
            if conversation is None:
                raise KeyError(conversation_id)
            row = DocumentRow(conversation_id=conversation_id, message_id=message_id, name=storable(name)[:MAX_NAME],
                              pages=pages, tokens=tokens, created_at=now())
            session.add(row)
            session.flush()
            session.add_all(DocumentChunkRow(document_id=row.id, page=chunk.page, label=chunk.label, start=chunk.start,
                                             text=storable(chunk.text))
                            for chunk in chunks)
            mark_changed(conversation)
            return row.id

    def documents(self, owner: str, conversation_id: str, embedder: str) -> list[DocumentInfo]:
        embedded = func.count(DocumentChunkRow.id).filter(DocumentChunkRow.embedder == embedder)
        with self._session() as session:
            if self._owned(session, owner, conversation_id) is None:
                return []
            rows = session.execute(
                select(DocumentRow, func.count(DocumentChunkRow.id), embedded)
                .join(DocumentChunkRow, DocumentChunkRow.document_id == DocumentRow.id, isouter=True)
                .where(DocumentRow.conversation_id == conversation_id)
                .group_by(DocumentRow.id).order_by(DocumentRow.id)).all()
            return [DocumentInfo(row.id, row.name, row.message_id, row.pages, row.tokens, chunks, done)
                    for row, chunks, done in rows]

    def document_chunks(self, owner: str, conversation_id: str, embedder: str,
                        shown: list[int] | None = None) -> list[StoredChunk]:
        """Every chunk of the conversation's documents, in order; vectors only from `embedder`. `shown`: the
        ids of the messages shown (the active branch), to leave out documents of questions on other branches."""
        with self._session() as session:
            if self._owned(session, owner, conversation_id) is None:
                return []
            rows = session.execute(
                select(DocumentChunkRow, DocumentRow.name).join(DocumentRow)
                .where(DocumentRow.conversation_id == conversation_id, *_on_branch(conversation_id, shown))
                .order_by(DocumentRow.id, DocumentChunkRow.id)).all()
            return [StoredChunk(chunk.id, chunk.document_id, name, chunk.page, chunk.text, chunk.start,
                                np.frombuffer(chunk.vector, dtype="<f4") if chunk.vector and chunk.embedder == embedder
                                else None, chunk.label) for chunk, name in rows]

    def pending_chunks(self, owner: str, conversation_id: str, embedder: str, limit: int) -> list[StoredChunk]:
        """The first `limit` chunks of the conversation's documents with no vector from `embedder`."""
        with self._session() as session:
            if self._owned(session, owner, conversation_id) is None:
                return []
            rows = session.execute(
                select(DocumentChunkRow, DocumentRow.name).join(DocumentRow)
                .where(DocumentRow.conversation_id == conversation_id,
                       or_(DocumentChunkRow.embedder.is_(None), DocumentChunkRow.embedder != embedder))
                .order_by(DocumentChunkRow.id).limit(limit)).all()
            return [StoredChunk(chunk.id, chunk.document_id, name, chunk.page, chunk.text, chunk.start, None, chunk.label)
                    for chunk, name in rows]

    def embedded_count(self, owner: str, conversation_id: str, embedder: str) -> tuple[int, int]:
        """How many of the conversation's chunks have a vector from `embedder`, of how many."""
        documents = self.documents(owner, conversation_id, embedder)
        return sum(d.embedded for d in documents), sum(d.chunks for d in documents)

    def save_chunk_vectors(self, owner: str, conversation_id: str, embedder: str,
                           vectors: dict[int, np.ndarray]) -> None:
        with self._session() as session:
            if self._owned(session, owner, conversation_id) is None:
                raise KeyError(conversation_id)
            own_documents = select(DocumentRow.id).where(DocumentRow.conversation_id == conversation_id)
            for chunk_id, vector in vectors.items():
                session.execute(update(DocumentChunkRow).where(DocumentChunkRow.id == chunk_id,
                                                               DocumentChunkRow.document_id.in_(own_documents))
                                .values(embedder=embedder, vector=np.asarray(vector, dtype="<f4").tobytes()))

    def document_tokens(self, owner: str, conversation_id: str, shown: list[int] | None = None) -> int:
        """The size of the conversation's documents (on the branch of `shown`), all together."""
        with self._session() as session:
            if self._owned(session, owner, conversation_id) is None:
                return 0
            return session.scalar(select(func.coalesce(func.sum(DocumentRow.tokens), 0))
                                  .where(DocumentRow.conversation_id == conversation_id,
                                         *_on_branch(conversation_id, shown)))

    def remove_document(self, owner: str, conversation_id: str, document_id: int) -> None:
        with self._session() as session:
            conversation = self._owned(session, owner, conversation_id)
            row = session.get(DocumentRow, document_id)
            if conversation is None or row is None or row.conversation_id != conversation_id:
                raise KeyError(document_id)
            session.delete(row)
            mark_changed(conversation)


def _on_branch(conversation_id: str, shown: list[int] | None) -> list[Any]:
    """Documents that came with a question at a place on the shown branch: that question, or one that
    replaced it there (an edit keeps its documents), or none (kept for the whole conversation)."""
    if shown is None:
        return []
    placed = select(MessageRow.id).where(MessageRow.conversation_id == conversation_id,
                                         or_(MessageRow.parent_id.is_(None), MessageRow.parent_id.in_(shown)))
    return [or_(DocumentRow.message_id.is_(None), DocumentRow.message_id.in_(placed))]
