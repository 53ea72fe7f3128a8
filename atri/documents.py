"""Documents a visitor attaches to a conversation: their text (PDF, DOCX, TXT, Markdown, HTML) with page
numbers, cut into chunks, and the excerpts each question brings back.

Retrieval is hybrid, as in the big chat UIs: BM25 over words (Chinese cut by jieba) is ready the moment
the text is read, and the recall embedder's vectors join in as they are made (a 300-page book is
minutes of embedding on two cores, but seconds to read). Ranks are fused (reciprocal rank fusion), so
a chunk not embedded yet can still win on its words.
"""
from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import PurePath
from typing import TypeVar

import bm25s
import numpy as np
from charset_normalizer import from_bytes
from semantic_text_splitter import MarkdownSplitter, TextSplitter

from .embeddings import Embedder
from .isolation import Limits, Refusal, WorkTooHeavy, run_isolated
from .webfetch import page_text

T = TypeVar("T")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\[\]]")  # nor brackets: a label sits inside a citation's

DOCUMENT_TYPES = ("pdf", "docx", "txt", "md", "markdown", "html", "htm")
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
CHUNK_CHARS = (800, 1200)  # a chunk is a few paragraphs: what e5-small reads whole, and a useful excerpt
CHUNK_OVERLAP = 200  # a sentence cut at a chunk's end is whole at the next one's start
EXCERPTS = 6  # chunks a question brings back
WHOLE_TOKENS = 6000  # documents this small (all of a conversation's together) are sent whole
WHOLE_SHARE = 0.3  # ... and only while they take at most this share of the input budget
SCANNED_PAGES_SENT = 10  # a PDF with no text: its first pages go to the model as images
PAGES_PER_JOB = 25  # a PDF's pages read per worker job: the progress moves between jobs
DOCUMENT_LIMITS = Limits(cpu_s=60, wall_s=120, memory_bytes=2 * 1024**3)  # a 50 MB book, read by PDFium
MAX_LABEL_CHARS = 24  # a page label is cited in every excerpt: a hostile PDF's is clipped
RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al.; what Open WebUI and others use)


class DocumentProblem(Refusal):
    """A file that cannot be read as a document; `key` and `values` make the visitor's message."""


@dataclass(frozen=True)
class Upload:
    """A file attached to a question, as the visitor sent it."""

    name: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Page:
    number: int | None  # the sheet, from 1; None: the format has no pages (DOCX, text, HTML)
    text: str
    label: str | None = None  # the number printed on it (the PDF's /PageLabels: "xiv", "A-3"), when it has one


@dataclass(frozen=True)
class Chunk:
    page: int | None
    text: str
    start: int  # where it begins in its page's text (chunks overlap: a page is rebuilt from the starts)
    label: str | None = None  # its page's printed label


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as retrieval reads it back: which document, and its vector once it is embedded."""

    id: int
    document_id: int
    document: str
    page: int | None
    text: str
    start: int
    vector: np.ndarray | None
    label: str | None = None  # its page's printed label


@dataclass(frozen=True)
class Excerpt:
    document: str
    page: int | None
    text: str
    score: float  # the fused score that ranked it
    similarity: float | None  # cosine similarity to the question (None: not embedded yet)
    label: str | None = None  # the page's printed label, cited instead of its sheet number


def document_kind(name: str) -> str | None:
    """The document type of a file name ("pdf", "docx", ...), or None for anything else."""
    kind = PurePath(name).suffix.lower().lstrip(".")
    return kind if kind in DOCUMENT_TYPES else None


def cite(document: str, page: int | None, label: str | None = None) -> str:
    """How an answer points at a place in a document: the page as printed on it, else its sheet number."""
    place = label or page
    return f"[{document} p.{place}]" if place else f"[{document}]"


def read_pages(name: str, data: bytes, on_page: Callable[[int, int], None] = lambda done, total: None) -> list[Page]:
    """The text of a document, page by page where the format has pages. Raises DocumentProblem."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentProblem("document_too_big", name=name, size_mb=len(data) / 2**20,
                              limit_mb=MAX_DOCUMENT_BYTES / 2**20)
    kind = document_kind(name)
    if kind == "pdf":
        pages = _pdf_pages(name, data, on_page)
    elif kind == "docx":
        pages = [Page(None, _docx_text(name, data))]
    elif kind in ("html", "htm"):
        pages = [Page(None, page_text(_decoded(data).encode("utf-8"), "text/html; charset=utf-8"))]
    elif kind is not None:
        pages = [Page(None, _decoded(data))]
    else:
        raise DocumentProblem("document_type", name=name, types=", ".join(DOCUMENT_TYPES))
    pages = [page for page in pages if page.text.strip()]
    if not pages:
        raise DocumentProblem("document_scanned" if kind == "pdf" else "document_empty", name=name)
    return pages


def check_document(name: str, data: bytes) -> None:
    """Refuse, while the visitor is still there to read why, what cannot be read: wrong type, too big,
    damaged, locked, or a PDF without text (a scan). Raises DocumentProblem; a PDF is only opened and
    looked at up to its first page with text, so a book is checked in a moment."""
    if document_kind(name) != "pdf":
        read_pages(name, data)
        return
    if len(data) > MAX_DOCUMENT_BYTES:
        read_pages(name, data)  # raises document_too_big
    document = _pdf_document(name, data)
    try:
        if not any(_sheet_text(document, index).strip() for index in range(len(document))):
            raise DocumentProblem("document_scanned", name=name)
    finally:
        document.close()


def check_document_isolated(name: str, data: bytes) -> None:
    """`check_document` in a worker process (atri.isolation): a file is the visitor's to make heavy."""
    _isolated(name, check_document, name, data)


def scanned_pages_isolated(name: str, data: bytes) -> tuple[list[tuple[str, bytes]], int]:
    return _isolated(name, scanned_pages, name, data)


def read_pages_isolated(name: str, data: bytes,
                        on_page: Callable[[int, int], None] = lambda done, total: None) -> list[Page]:
    """`read_pages` in worker processes: a PDF a few pages per job, with the progress between jobs."""
    if document_kind(name) != "pdf" or len(data) > MAX_DOCUMENT_BYTES:
        return _isolated(name, read_pages, name, data)
    total = _isolated(name, pdf_page_count, name, data)
    pages: list[Page] = []
    for first in range(0, total, PAGES_PER_JOB):
        pages += _isolated(name, pdf_page_texts, name, data, first, first + PAGES_PER_JOB)
        on_page(len(pages), total)
    pages = [page for page in pages if page.text.strip()]
    if not pages:
        raise DocumentProblem("document_scanned", name=name)
    return pages


def _isolated(name: str, function: Callable[..., T], *args: object) -> T:
    try:
        return run_isolated(function, *args, limits=DOCUMENT_LIMITS)
    except WorkTooHeavy:
        raise DocumentProblem("document_too_heavy", name=name) from None


def pdf_page_count(name: str, data: bytes) -> int:
    document = _pdf_document(name, data)
    try:
        return len(document)
    finally:
        document.close()


def pdf_page_texts(name: str, data: bytes, first: int, stop: int) -> list[Page]:
    """The text of pages first+1 … stop (numbered from 1), each with its printed label."""
    document = _pdf_document(name, data)
    try:
        return [Page(index + 1, _sheet_text(document, index), _label(document, index))
                for index in range(first, min(stop, len(document)))]
    finally:
        document.close()


def _pdf_document(name: str, data: bytes):  # -> pypdfium2.PdfDocument
    """The PDF opened with PDFium, which keeps the spaces between words that pypdf loses where a PDF
    places words without a space character (the Debian Reference: 61 % of lines run together with pypdf,
    0.3 % with PDFium; bench/documents.py). A PDF locked by a password is refused (no password is asked)."""
    import pypdfium2
    import pypdfium2.raw as pdfium_c

    try:
        return pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as error:
        if getattr(error, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            raise DocumentProblem("document_encrypted", name=name) from None
        raise DocumentProblem("document_unreadable", name=name, detail="PdfiumError") from None


def _sheet_text(document, index: int) -> str:  # a pypdfium2.PdfDocument
    try:
        page = document[index]
        try:
            textpage = page.get_textpage()
            try:
                text = textpage.get_text_bounded()
            finally:
                textpage.close()
        finally:
            page.close()
    except Exception:  # a damaged page; the other pages still count
        return ""
    # PDFium marks a hyphen it saw at a line's end (a word broken across lines) as \x02 and ends lines with \r\n
    return text.replace("\x02", "").replace("\r\n", "\n").replace("\r", "\n")


def _label(document, index: int) -> str | None:  # a pypdfium2.PdfDocument
    """The page's printed number from the PDF's /PageLabels ("xiv", "A-3"), cleaned and kept short, or None
    when the PDF has none."""
    try:
        label = document.get_page_label(index)
    except Exception:  # a damaged label tree: the sheet number serves
        return None
    label = " ".join(_UNPRINTABLE.sub(" ", label or "").split())[:MAX_LABEL_CHARS]
    return label or None


def _pdf_reader(name: str, data: bytes):  # -> pypdf.PdfReader
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        locked = reader.is_encrypted and not reader.decrypt("")
    except Exception as error:  # pypdf raises many kinds on a damaged file (or an encryption it cannot open)
        raise DocumentProblem("document_unreadable", name=name, detail=type(error).__name__) from error
    if locked:
        raise DocumentProblem("document_encrypted", name=name)
    return reader


def _pdf_pages(name: str, data: bytes, on_page: Callable[[int, int], None]) -> list[Page]:
    total = pdf_page_count(name, data)
    pages: list[Page] = []
    for first in range(0, total, PAGES_PER_JOB):
        pages += pdf_page_texts(name, data, first, first + PAGES_PER_JOB)
        on_page(len(pages), total)
    return pages


def scanned_pages(name: str, data: bytes, limit: int = SCANNED_PAGES_SENT) -> tuple[list[tuple[str, bytes]], int]:
    """The largest image of each of the first `limit` pages of a PDF with no text (a scan), and how many
    pages it has: what a vision model can read instead."""
    reader = _pdf_reader(name, data)
    images = []
    for number, page in enumerate(reader.pages[:limit], start=1):
        try:
            largest = max(page.images, key=lambda image: len(image.data), default=None)
        except Exception:
            largest = None
        if largest is not None:
            images.append((f"{PurePath(name).stem} p.{number}{PurePath(largest.name).suffix or '.png'}", largest.data))
    return images, len(reader.pages)


def _docx_text(name: str, data: bytes) -> str:
    from docx import Document

    try:
        unpacked = sum(member.file_size for member in zipfile.ZipFile(io.BytesIO(data)).infolist())
    except Exception as error:
        raise DocumentProblem("document_unreadable", name=name, detail=type(error).__name__) from error
    if unpacked > MAX_DOCUMENT_BYTES:  # a small file that unpacks to gigabytes
        raise DocumentProblem("document_too_big", name=name, size_mb=unpacked / 2**20, limit_mb=MAX_DOCUMENT_BYTES / 2**20)
    try:
        document = Document(io.BytesIO(data))
    except Exception as error:  # a damaged file raises whatever its zip or XML layer finds
        raise DocumentProblem("document_unreadable", name=name, detail=type(error).__name__) from error
    blocks = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        blocks.extend(" | ".join(cell.text for cell in row.cells) for row in table.rows)
    return "\n\n".join(block for block in blocks if block.strip())


def _decoded(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        best = from_bytes(data).best()
        return str(best) if best is not None else data.decode("utf-8", errors="replace")


def chunk_pages(kind: str | None, pages: list[Page]) -> list[Chunk]:
    """Pages cut into overlapping chunks of a few paragraphs; a chunk never spans two pages (it cites one)."""
    kind_of_splitter = MarkdownSplitter if kind in ("md", "markdown") else TextSplitter
    splitter = kind_of_splitter(CHUNK_CHARS, overlap=CHUNK_OVERLAP)
    return [Chunk(page.number, text, start, page.label)
            for page in pages for start, text in splitter.chunk_indices(page.text)]


def whole_pages(chunks: list[StoredChunk]) -> list[Excerpt]:
    """The chunks put back together into their pages (overlaps removed), in order."""
    pages: dict[tuple[int, int | None], list[StoredChunk]] = {}
    for chunk in chunks:
        pages.setdefault((chunk.document_id, chunk.page), []).append(chunk)
    return [Excerpt(parts[0].document, page, _joined(parts), 1.0, None, parts[0].label)
            for (_, page), parts in pages.items()]


def _joined(parts: list[StoredChunk]) -> str:
    """Consecutive chunks of one page as its text: each up to where the next begins; a gap between two
    (trimmed whitespace) becomes one space."""
    text = []
    for part, following in zip(parts, [*parts[1:], None]):
        if following is None:
            text.append(part.text)
        elif following.start - part.start > len(part.text):
            text.append(part.text + " ")
        else:
            text.append(part.text[:following.start - part.start])
    return "".join(text)


def words(text: str) -> list[str]:
    """The words BM25 counts: jieba's cut (Chinese words; other scripts by spaces), lowercased."""
    import rjieba  # loads its dictionary (~0.4 s): only once documents are used

    return [word.lower() for word in rjieba.cut(text) if any(char.isalnum() for char in word)]


@lru_cache(maxsize=8)
def _lexical_index(texts: tuple[str, ...]) -> bm25s.BM25:
    index = bm25s.BM25()
    index.index([words(text) or ["\u2205"] for text in texts], show_progress=False)
    return index


def search(question: str, chunks: list[StoredChunk], embedder: Embedder | None, k: int = EXCERPTS) -> list[Excerpt]:
    """The k chunks that best answer the question, best first: BM25 and embedding ranks fused. Until every
    chunk has its vector, words alone rank (a partial embedding ranking would favour the embedded chunks)."""
    if not chunks or not question.strip() or k <= 0:
        return []
    fused = np.zeros(len(chunks))
    _add_ranks(fused, _lexical_index(tuple(chunk.text for chunk in chunks)).get_scores(words(question) or ["\u2205"]))
    similarity = None
    if embedder is not None and all(chunk.vector is not None for chunk in chunks):
        similarity = np.stack([chunk.vector for chunk in chunks]) @ embedder.query(question)
        _add_ranks(fused, similarity)
    best = [int(i) for i in np.argsort(-fused, kind="stable")[:k] if fused[i] > 0]
    return [Excerpt(chunks[i].document, chunks[i].page, chunks[i].text, round(float(fused[i]), 4),
                    None if similarity is None else float(similarity[i]), chunks[i].label) for i in best]


def _add_ranks(fused: np.ndarray, scores: np.ndarray) -> None:
    """Reciprocal rank fusion: each ranking adds 1 / (RRF_K + rank) to the chunks it scored above zero."""
    for rank, i in enumerate(np.argsort(-scores, kind="stable"), start=1):
        if scores[i] > 0:
            fused[i] += 1.0 / (RRF_K + rank)


def sent_whole(total_tokens: int, budget: int) -> bool:
    """Short documents go to the model whole rather than as excerpts."""
    return total_tokens <= min(WHOLE_TOKENS, WHOLE_SHARE * budget)


def documents_block(excerpts: list[Excerpt], whole: bool) -> str:
    """The system prompt's part about the documents, with how to cite them."""
    intro = ("Documents the user attached to this conversation" if whole
             else "Excerpts from the documents the user attached, the most relevant to the question first")
    parts = [f"{cite(e.document, e.page, e.label)}\n{e.text.strip()}" for e in excerpts]
    return (f"{intro}. When you use them, cite the place in square brackets exactly as given, "
            f"e.g. {cite(excerpts[0].document, excerpts[0].page, excerpts[0].label)}.\n\n" + "\n\n---\n\n".join(parts))
