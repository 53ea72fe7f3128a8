"""Documents: how soon a 300-page PDF can be asked about, on this machine, through the app's own steps.

    .venv/bin/python -m bench.documents

The PDF is made here (fpdf2), ~2,500 characters of prose a page, with one fact on page 217. Timed:
the check when it is attached (in the page), then what the answer's worker does before the first
answer can use it — read every page (pypdf), cut into chunks, count tokens (the Qwen tokenizer the
app counts with), store in SQLite — then the first question's retrieval (words only: nothing is
embedded yet) and the embedding of every chunk, which goes on in the background after that answer.
The last line is `ready to ask: N.N s` (the issue's goal: under a minute).
"""
from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path

from fpdf import FPDF

from atri.answers import embed_documents
from atri.documents import check_document, chunk_pages, read_pages, search
from atri.embeddings import default_embedder
from atri.settings import Settings
from atri.store import Store
from atri.tokenizer import counter_for

PAGES = 300
FACT_PAGE = 217
FACT = "The harbour master's spare key is hidden under the third lantern on the north pier."
QUESTION = "Where is the harbour master's spare key?"
WORDS = ("river bridge market council harvest winter summer stone timber village workers families road weather "
         "records history visitors season school water energy growth report city station railway orchard mill "
         "canal meadow quarry glacier library lighthouse bakery vineyard observatory").split()


def book() -> bytes:
    rng = random.Random(7)
    pdf = FPDF()
    pdf.set_font("Helvetica", size=9)
    for number in range(1, PAGES + 1):
        sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 18))).capitalize() + "."
                     for _ in range(38)]
        if number == FACT_PAGE:
            sentences.insert(20, FACT)
        pdf.add_page()
        pdf.multi_cell(0, 4.5, " ".join(sentences))
    return bytes(pdf.output())


def timed(label: str, step):
    started = time.perf_counter()
    result = step()
    print(f"{label}: {time.perf_counter() - started:.1f} s", flush=True)
    return result, time.perf_counter() - started


def main() -> None:
    data = book()
    print(f"PDF: {PAGES} pages, {len(data) / 2**20:.1f} MB")
    count = counter_for("qwen3-max", Settings(dict(os.environ)).config.cache_dir)
    count("warm up")  # the tokenizer loads once per process, before any document
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{Path(folder) / 'bench.db'}")
        cid = store.create_conversation("bench", "a book")
        _, checked = timed("checked when attached", lambda: check_document("book.pdf", data))

        def read_and_store() -> int:
            pages = read_pages("book.pdf", data)
            chunks = chunk_pages("pdf", pages)
            store.add_document("bench", cid, "book.pdf", None, len(pages), sum(count(c.text) for c in chunks), chunks)
            return len(chunks)

        chunks, stored = timed("read, cut, counted and stored (the worker, before the first answer)", read_and_store)
        embedder = default_embedder()
        found, _ = timed("first question's retrieval (words only)",
                         lambda: search(QUESTION, store.document_chunks("bench", cid, embedder.name), None))
        print(f"  best excerpt: p.{found[0].page} (the fact is on p.{FACT_PAGE})")
        _, embedded = timed(f"all {chunks} chunks embedded (in the background)",
                            lambda: embed_documents(store, "bench", cid))
        found, _ = timed("a question once embedded (words and meaning)",
                         lambda: search(QUESTION, store.document_chunks("bench", cid, embedder.name), embedder))
        print(f"  best excerpt: p.{found[0].page}")
    print(f"ready to ask: {checked + stored:.1f} s")


if __name__ == "__main__":
    main()
