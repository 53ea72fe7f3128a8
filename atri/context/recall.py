"""Recall memory: every finished turn is embedded (atri.embeddings); a new question brings back the closest
earlier turns. Vectors are L2-normalised, so cosine similarity is a dot product; a few thousand turns are a
single numpy matrix product.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..embeddings import Embedder
from ..messages import Message
from .plan import Recalled, turn_starts, turn_text


@dataclass(frozen=True)
class Memory:
    key: str  # which question and answer it was made from (see turn_key)
    text: str
    vector: np.ndarray


def turn_key(thread: list[Message], start: int) -> str:
    """Stable across reloads, new when the answer is regenerated or the question edited."""
    answer = next((m for m in thread[start + 1:start + 2] if m.role == "assistant"), None)
    question_id = thread[start].id if thread[start].id is not None else f"i{start}"
    return f"{question_id}:{answer.id if answer and answer.id is not None else start + 1}"


def finished_turns(thread: list[Message]) -> list[int]:
    """Thread indexes of the turns that have an answer (the open question is not one)."""
    return [s for s in turn_starts(thread) if s + 1 < len(thread) and thread[s + 1].role == "assistant"]


def turns_to_embed(thread: list[Message], known: set[str]) -> list[tuple[str, str]]:
    """(key, text) of the finished turns that have no memory yet."""
    todo = []
    for start in finished_turns(thread):
        key = turn_key(thread, start)
        if key not in known:
            todo.append((key, turn_text(thread, start)))
    return todo


def new_memories(thread: list[Message], known: set[str], embedder: Embedder) -> list[Memory]:
    """Memories of the finished turns that have none yet (keys in `known`)."""
    todo = turns_to_embed(thread, known)
    if not todo:
        return []
    vectors = embedder.passages([text for _, text in todo])
    return [Memory(key, text, vector) for (key, text), vector in zip(todo, vectors)]


def recall(question: str, thread: list[Message], memories: list[Memory], embedder: Embedder, k: int,
           before: int) -> list[Recalled]:
    """The k turns most similar to the question among this thread's turns that start before `before`."""
    index_of = {turn_key(thread, s): s for s in finished_turns(thread) if s < before}
    candidates = [(index_of[m.key], m) for m in memories if m.key in index_of]
    if not candidates or k <= 0 or not question.strip():
        return []
    scores = np.stack([m.vector for _, m in candidates]) @ embedder.query(question)
    best = sorted(np.argsort(-scores)[:k], key=lambda i: candidates[i][0])  # in conversation order
    return [Recalled(candidates[i][0], candidates[i][1].text, float(scores[i])) for i in best]
