"""Documents: how soon a 300-page PDF can be asked about, on this machine, through the app's own steps; and
how well real PDFs are read (the Debian Reference, English and Chinese).

    .venv/bin/python -m bench.documents            # both parts
    .venv/bin/python -m bench.documents debian     # the Debian Reference only

The PDF is made here (fpdf2), ~2,500 characters of prose a page, with one fact on page 217. Timed:
the check when it is attached (in the page), then what the answer's worker does before the first
answer can use it — read every page (pypdf), cut into chunks, count tokens (the Qwen tokenizer the
app counts with), store in SQLite — then the first question's retrieval (words only: nothing is
embedded yet) and the embedding of every chunk, which goes on in the background after that answer.
The last line of that part is `ready to ask: N.N s` (the issue's goal: under a minute).

The Debian Reference PDFs come from Debian's `debian-reference-en` and `debian-reference-zh-cn` packages
(`apt-get download`, kept in the cache folder; skipped with a message where apt-get cannot fetch them). Each
is read twice, "before" (pypdf's `extract_text`, what the app used) and "after" (the app's reader), and told:
- lines run together: the share of lines with a word that is not in the book's own vocabulary (its plain-text
  edition, in the same package) but is two or more of its words joined (`thefirstthingyouputinthepipe`);
  the goal is under 1 %;
- pages per second (one process, reading only);
- for each of 10 questions, whether the section that answers it is among the excerpts a question brings back
  (words only: BM25, as before anything is embedded): its printed page or the next, as its table of contents
  gives it.
"""
from __future__ import annotations

import gzip
import io
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fpdf import FPDF

from atri.answers import embed_documents
from atri.documents import EXCERPTS, Page, StoredChunk, check_document, chunk_pages, read_pages, search
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



# --- the Debian Reference -------------------------------------------------------------------------------

PACKAGES = {"en": "debian-reference-en", "zh-cn": "debian-reference-zh-cn"}
# (question in English, in Chinese, the printed page of the section that answers it in each edition)
QUESTIONS = [
    ("What is a named pipe and how does it behave?", "命名管道是什么？它是怎样工作的？", "14", "13"),
    ("A package's maintainer script is broken: how do I fix it?", "软件包的脚本坏了，怎么修复？", "64", "61"),
    ("How can I find the optimal MTU for my network?", "怎样找出网络的最佳 MTU？", "102", "97"),
    ("How do I log in with SSH without typing a password?", "怎样不输入密码通过 SSH 登录远程主机？", "113", "108"),
    ("How do I shut down a remote machine over SSH?", "怎样通过 SSH 关闭远程机器？", "115", "109"),
    ("How do I run a command again and again at a fixed interval?", "怎样以固定的时间间隔重复执行一个命令？", "145", "137"),
    ("How do I schedule a task to run only once?", "怎样安排一个只运行一次的任务？", "149", "140"),
    ("How should I optimize a solid state drive?", "怎样优化固态硬盘？", "159", "151"),
    ("How can I erase an entire hard disk?", "怎样擦除整块硬盘？", "167", "159"),
    ("How do I manage my GnuPG keys?", "怎样管理 GnuPG 的密钥？", "189", "179"),
]
LATIN_WORD = re.compile(r"[A-Za-z]+")


def debian_reference(folder: Path, language: str) -> tuple[bytes, str] | None:
    """The PDF and its plain-text edition from Debian's package, downloaded once into `folder`."""
    unpacked = folder / language
    pdf = unpacked / f"usr/share/debian-reference/debian-reference.{language}.pdf"
    if not pdf.exists():
        if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
            print(f"skipped: the Debian Reference ({language}) needs apt-get and dpkg-deb (Debian's packages)")
            return None
        folder.mkdir(parents=True, exist_ok=True)
        fetched = subprocess.run(["apt-get", "download", PACKAGES[language]], cwd=folder, capture_output=True, text=True)
        debs = sorted(folder.glob(f"{PACKAGES[language]}_*.deb"))
        if fetched.returncode != 0 or not debs:
            print(f"skipped: apt-get download {PACKAGES[language]} failed: {fetched.stderr.strip()[-300:]}")
            return None
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(unpacked)], check=True)
    text = gzip.open(pdf.with_suffix(".txt.gz"), "rt", encoding="utf-8", errors="replace").read()
    return pdf.read_bytes(), text


def joined_words(vocabulary: set[str]) -> Callable[[str], bool]:
    """Whether a word is two or more of the vocabulary's words (each of 2+ letters, or "a") run together."""
    seen: dict[str, bool] = {}

    def joined(word: str) -> bool:
        word = word.lower()
        if word not in seen:
            fewest = [0] + [99] * len(word)  # the fewest vocabulary words that make each prefix
            for end in range(1, len(word) + 1):
                for start in range(max(0, end - 25), end):
                    piece = word[start:end]
                    if fewest[start] < 99 and piece in vocabulary and (len(piece) > 1 or piece == "a"):
                        fewest[end] = min(fewest[end], fewest[start] + 1)
            seen[word] = 2 <= fewest[-1] < 99
        return seen[word]

    return joined


def run_together_share(pages: list[Page], vocabulary: set[str]) -> float:
    joined = joined_words(vocabulary)
    lines = [line for page in pages for line in page.text.splitlines() if LATIN_WORD.search(line)]
    bad = sum(any(len(word) >= 8 and word.lower() not in vocabulary and joined(word) for word in LATIN_WORD.findall(line))
              for line in lines)
    return bad / max(len(lines), 1)


def pypdf_pages(data: bytes) -> list[Page]:
    """What the app read before: pypdf's text, with the same printed labels (only the text is compared)."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    return [Page(number, page.extract_text() or "", reader.page_labels[number - 1])
            for number, page in enumerate(reader.pages, start=1)]


def question_ranks(pages: list[Page], language: str) -> list[int | None]:
    """For each question, the rank (1 = first) of the first excerpt from its section's page or the next."""
    chunks = chunk_pages("pdf", pages)
    stored = [StoredChunk(i, 1, "ref.pdf", c.page, c.text, c.start, None, c.label) for i, c in enumerate(chunks)]
    ranks = []
    for english, chinese, page_en, page_zh in QUESTIONS:
        page = int(page_en if language == "en" else page_zh)
        labels = [excerpt.label for excerpt in search(english if language == "en" else chinese, stored, None, k=EXCERPTS)]
        ranks.append(next((rank for rank, label in enumerate(labels, start=1) if label in (str(page), str(page + 1))), None))
    return ranks


def bench_debian_reference() -> None:
    folder = Settings(dict(os.environ)).config.cache_dir / "debian-reference"
    for language in PACKAGES:
        fetched = debian_reference(folder, language)
        if fetched is None:
            continue
        data, text = fetched
        vocabulary = {word.lower() for word in LATIN_WORD.findall(text)}
        for when, reader in (("before (pypdf)", pypdf_pages), ("after (atri)", lambda d: read_pages("ref.pdf", d))):
            started = time.perf_counter()
            pages = reader(data)
            seconds = time.perf_counter() - started
            ranks = question_ranks(pages, language)
            print(f"Debian Reference ({language}), {when}: {len(pages)} pages, {len(pages) / seconds:.0f} pages/s, "
                  f"lines run together {100 * run_together_share(pages, vocabulary):.1f} %, questions whose page is "
                  f"among the {EXCERPTS} excerpts {sum(rank is not None for rank in ranks)}/{len(ranks)}, "
                  f"first {ranks.count(1)}/{len(ranks)} (ranks: {' '.join(str(rank or '-') for rank in ranks)})",
                  flush=True)

if __name__ == "__main__":
    if sys.argv[1:] != ["debian"]:
        main()
    bench_debian_reference()
