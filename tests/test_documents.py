"""Documents to talk to (issue 11): files made here with real writers (fpdf2, python-docx, pypdf), read
back by the app, retrieved into the context and cited; the turn end to end against the fake provider."""
import io
import random
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from docx import Document
from fpdf import FPDF
from PIL import Image
from pypdf import PdfReader, PdfWriter
from pypdf.constants import PageLabelStyle

from atri.answers import Answerer, embed_documents
from atri.documents import (
    DocumentProblem,
    Page,
    StoredChunk,
    Upload,
    check_document,
    chunk_pages,
    documents_block,
    read_pages,
    read_pages_isolated,
    scanned_pages,
    search,
    whole_pages,
)
from atri.embeddings import default_embedder
from atri.messages import Message
from atri.store import Store
from tests.test_answers import setup_for, wait_done

SECRET = "The launch code of the moon base is AURORA-7731, kept in the blue safe."
TOPICS = ["harbour", "orchard", "railway", "glacier", "library", "vineyard", "bakery", "lighthouse", "quarry",
          "meadow", "canal", "observatory"]


def filler(topic: str, seed: int, words: int = 420) -> str:
    rng = random.Random(seed)
    vocabulary = [topic, "village", "season", "workers", "history", "river", "weather", "market", "council", "stone",
                  "summer", "winter", "visitors", "records", "families", "road", "bridge", "timber", "harvest"]
    sentences = []
    while sum(len(s.split()) for s in sentences) < words:
        sentences.append(" ".join(rng.choice(vocabulary) for _ in range(rng.randint(8, 16))).capitalize() + ".")
    return " ".join(sentences)


def report_pdf(pages: int = 12, secret_page: int = 7) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    for number in range(1, pages + 1):
        pdf.add_page()
        topic = TOPICS[(number - 1) % len(TOPICS)]
        text = filler(topic, number)
        if number == secret_page:
            text = text[:len(text) // 2] + " " + SECRET + " " + text[len(text) // 2:]
        pdf.multi_cell(0, 5, f"Chapter {number}: the {topic}. {text}")
    return bytes(pdf.output())


def scanned_pdf(pages: int = 3) -> bytes:
    pdf = FPDF()
    for number in range(pages):
        picture = io.BytesIO()
        Image.new("RGB", (200, 280), (240, 240 - 40 * number, 230)).save(picture, format="PNG")
        pdf.add_page()
        pdf.image(picture, x=10, y=10, w=180)
    return bytes(pdf.output())


def test_a_pdf_is_read_page_by_page_and_its_chunks_keep_their_page():
    pages = read_pages("report.pdf", report_pdf())
    assert [p.number for p in pages] == list(range(1, 13))
    assert "AURORA-7731" in pages[6].text and "AURORA-7731" not in pages[5].text
    chunks = chunk_pages("pdf", pages)
    assert len(chunks) > 12, "pages of ~3,000 characters are cut into several chunks"
    assert all(len(c.text) <= 1200 for c in chunks)
    assert {c.page for c in chunks if "AURORA" in c.text} == {7}


DATA = Path(__file__).parent / "data"


def test_a_pdf_whose_words_are_placed_without_spaces_is_read_with_them():
    data = (DATA / "debian-reference-p15.pdf").read_bytes()  # a real page: see tests/data/README.md
    assert "Youcanreadandwritedevicefiles" in PdfReader(io.BytesIO(data)).pages[0].extract_text(), "pypdf loses them"
    [page] = read_pages_isolated("debian-reference.pdf", data)
    assert "You can read and write device files, though the file may well contain binary data" in page.text
    assert "For example, you can dump a text file to the printer device" in page.text, "a hyphenated word is whole"
    chunks = chunk_pages("pdf", [page])
    stored = [StoredChunk(i, 1, "ref.pdf", c.page, c.text, c.start, None, c.label) for i, c in enumerate(chunks)]
    [best] = search("How do I dump a text file to the printer?", stored, embedder=None, k=1)
    assert "printer device" in best.text and documents_block([best], whole=False).count("[ref.pdf p.15]") == 2


def labelled_pdf() -> bytes:
    """The report with its first four sheets numbered xii-xv (front matter) and the rest 1, 2, ..."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(report_pdf(pages=6, secret_page=3))))
    writer.set_page_label(0, 3, style=PageLabelStyle.LOWERCASE_ROMAN, start=12)
    writer.set_page_label(4, 5, style=PageLabelStyle.DECIMAL)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_pdf_with_page_labels_is_cited_by_its_printed_page():
    pages = read_pages("report.pdf", labelled_pdf())
    assert [(p.number, p.label) for p in pages] == [(1, "xii"), (2, "xiii"), (3, "xiv"), (4, "xv"), (5, "1"), (6, "2")]
    chunks = chunk_pages("pdf", pages)
    stored = [StoredChunk(i, 1, "report.pdf", c.page, c.text, c.start, None, c.label) for i, c in enumerate(chunks)]
    [best, *_] = search("What is the launch code of the moon base?", stored, embedder=None)
    assert (best.page, best.label) == (3, "xiv")
    block = documents_block([best], whole=False)
    assert "[report.pdf p.xiv]\n" in block and "p.3]" not in block
    assert [p.label for p in read_pages("plain.pdf", report_pdf(pages=2))] == [None, None], "no labels: sheet numbers"
    assert "[report.pdf p.2]" in documents_block(whole_pages(stored_chunks(report_pdf(pages=2)))[1:], whole=True)


def test_printed_page_labels_are_stored_and_cited_from_the_store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'atri.db'}")
    cid = store.create_conversation("alice")
    question = store.append("alice", cid, Message("user", "what is the launch code?"))
    store.add_document("alice", cid, "report.pdf", question, 6, 100, chunk_pages("pdf", read_pages("report.pdf", labelled_pdf())))
    chunks = store.context_source("alice", cid).document_chunks("e5")
    [best, *_] = search("What is the launch code of the moon base?", chunks, embedder=None)
    assert "[report.pdf p.xiv]\n" in documents_block([best], whole=False), "the label survives the database"


def test_a_hostile_page_label_cannot_break_the_citation():
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(report_pdf(pages=1))))
    writer.set_page_label(0, 0, style=PageLabelStyle.DECIMAL, prefix="A]\n[see " + "x" * 200, start=3)
    out = io.BytesIO()
    writer.write(out)
    [page] = read_pages("odd.pdf", out.getvalue())
    assert page.label is not None and len(page.label) <= 24 and not set(page.label) & set("[]\n")


def test_an_aes_encrypted_pdf_opens_without_a_password_and_one_with_a_password_is_refused():
    for algorithm in ("AES-128", "AES-256"):
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(report_pdf(pages=2))))
        writer.encrypt(user_password="", owner_password="owner-only", algorithm=algorithm)
        opened = io.BytesIO()
        writer.write(opened)
        check_document("opened.pdf", opened.getvalue())
        assert "Chapter 2" in read_pages("opened.pdf", opened.getvalue())[1].text
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(scanned_pdf(pages=1))))
        writer.encrypt(user_password="", owner_password="owner-only", algorithm=algorithm)
        scan = io.BytesIO()
        writer.write(scan)
        assert len(scanned_pages("scan.pdf", scan.getvalue())[0]) == 1, "pypdf decrypts it (with cryptography)"
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(report_pdf(pages=1))))
        writer.encrypt(user_password="s3cret", algorithm=algorithm)
        locked = io.BytesIO()
        writer.write(locked)
        with pytest.raises(DocumentProblem) as refused:
            check_document("locked.pdf", locked.getvalue())
        assert refused.value.key == "document_encrypted"


def test_docx_html_and_chinese_text_are_read():
    document = Document()
    document.add_paragraph("Quarterly report")
    document.add_paragraph("Revenue grew by 12 percent.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Region", "North"
    docx = io.BytesIO()
    document.save(docx)
    [page] = read_pages("report.docx", docx.getvalue())
    assert page.number is None and "Revenue grew by 12 percent." in page.text and "Region | North" in page.text

    html = b"<html><head><style>p{}</style><script>steal()</script></head><body><h1>Menu</h1><p>Tea 3 yuan</p></body>"
    [page] = read_pages("menu.html", html)
    assert "Tea 3 yuan" in page.text and "steal" not in page.text

    [page] = read_pages("notes.txt", "会议记录:下周三去北京出差,预算五千元。".encode("gb18030"))
    assert "北京出差" in page.text, "a text file not in UTF-8 is still read (GB18030 here)"

    gbk = "<html><head><meta charset='gbk'></head><body><p>菜单:豆浆两元,油条一元五角。今天营业到晚上九点。</p></body></html>"
    [page] = read_pages("menu-gbk.html", gbk.encode("gbk"))
    assert "豆浆两元" in page.text, "an HTML page in GBK is read as GBK"


def test_a_docx_that_unpacks_to_gigabytes_is_refused_unread():
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"0" * (60 * 2**20))
    assert len(bomb.getvalue()) < 2**20
    with pytest.raises(DocumentProblem) as refused:
        check_document("bomb.docx", bomb.getvalue())
    assert refused.value.key == "document_too_big"


def test_a_page_is_rebuilt_whole_from_its_overlapping_chunks_and_same_named_files_stay_apart():
    text = filler("harbour", 3, words=900)
    chunks = chunk_pages("txt", [Page(None, text)])
    assert len(chunks) > 2 and chunks[1].start < chunks[0].start + len(chunks[0].text), "the chunks overlap"
    stored = [StoredChunk(i, document, "notes.txt", c.page, c.text, c.start, None)
              for document in (1, 2) for i, c in enumerate(chunks)]
    first, second = whole_pages(stored)
    assert first.text == second.text == text


@pytest.mark.parametrize(("name", "data", "key"), [
    ("virus.exe", b"MZ...", "document_type"),
    ("broken.pdf", b"%PDF-1.7 this is not really a pdf", "document_unreadable"),
    ("broken.docx", b"PK not a zip", "document_unreadable"),
    ("empty.txt", b"   \n", "document_empty"),
])
def test_what_cannot_be_read_is_refused_with_its_reason(name, data, key):
    with pytest.raises(DocumentProblem) as refused:
        check_document(name, data)
    assert refused.value.key == key and refused.value.values["name"] == name


def test_a_password_protected_pdf_is_refused():
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(report_pdf(pages=1))))
    writer.encrypt("s3cret")
    locked = io.BytesIO()
    writer.write(locked)
    with pytest.raises(DocumentProblem) as refused:
        check_document("locked.pdf", locked.getvalue())
    assert refused.value.key == "document_encrypted"


def test_a_scanned_pdf_says_so_and_gives_its_pages_as_images():
    data = scanned_pdf(pages=3)
    with pytest.raises(DocumentProblem) as refused:
        check_document("scan.pdf", data)
    assert refused.value.key == "document_scanned"
    images, pages = scanned_pages("scan.pdf", data)
    assert pages == 3 and len(images) == 3
    assert Image.open(io.BytesIO(images[0][1])).size == (200, 280)


def stored_chunks(pdf: bytes, embedder=None) -> list[StoredChunk]:
    chunks = chunk_pages("pdf", read_pages("report.pdf", pdf))
    vectors = embedder.passages([c.text for c in chunks]) if embedder else [None] * len(chunks)
    return [StoredChunk(i, 1, "report.pdf", c.page, c.text, c.start, v) for i, (c, v) in enumerate(zip(chunks, vectors))]


def test_words_alone_find_the_page_before_anything_is_embedded():
    [best, *_] = search("What is the launch code of the moon base?", stored_chunks(report_pdf()), embedder=None)
    assert best.page == 7 and "AURORA-7731" in best.text and best.similarity is None


def test_embeddings_find_the_page_when_the_question_shares_few_words_with_it():
    embedder = default_embedder()
    chunks = stored_chunks(report_pdf(), embedder)
    [best, *_] = search("Which password starts the lunar station's rocket?", chunks, embedder)
    assert best.page == 7 and best.similarity is not None and best.similarity > 0.7


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'atri.db'}")


@pytest.fixture
def answerer(store):
    answerer = Answerer(store)
    yield answerer
    answerer.close()


def ask_with(store, answerer, fake, question: str, *documents: Upload, cid: str | None = None):
    cid = cid or store.create_conversation("alice", question)
    store.append("alice", cid, Message("user", question))
    live = answerer.start("alice", cid, replace(setup_for(fake, "qwen3-max"), documents=documents))
    wait_done(live, 90)
    return cid, store.messages("alice", cid)[-1]


def system_prompt(request: dict) -> str:
    return next(m["content"] for m in request["messages"] if m["role"] == "system")


def test_a_long_pdf_is_asked_about_and_the_answer_is_given_page_7(store, answerer, fake):
    cid, answer = ask_with(store, answerer, fake, "What is the launch code of the moon base?",
                           Upload("report.pdf", report_pdf()))
    sent = system_prompt(fake.streamed[-1])
    assert "AURORA-7731" in sent and "[report.pdf p.7]" in sent, "the page-7 excerpt went out, with how to cite it"
    assert "Chapter 3: the railway" not in sent, "a long document goes as excerpts, not whole"
    context = answer.facts.context
    assert context["documents_whole"] is False
    assert context["documents"][0]["page"] == 7 and "AURORA-7731" in context["documents"][0]["text"]
    [document] = store.documents("alice", cid, default_embedder().name)
    assert (document.name, document.pages, document.message_id) == ("report.pdf", 12,
                                                                     store.messages("alice", cid)[-2].id)
    assert document.tokens > 6000 and document.chunks > 12


def test_a_short_document_goes_whole_and_a_removed_one_is_gone(store, answerer, fake):
    menu = "Breakfast menu\n\nTea 3 yuan. Dumplings 8 yuan.\n\nOpen from 6 to 10."
    cid, answer = ask_with(store, answerer, fake, "How much are dumplings?", Upload("menu.md", menu.encode()))
    assert "Dumplings 8 yuan" in system_prompt(fake.streamed[-1]) and "Open from 6 to 10" in system_prompt(
        fake.streamed[-1])
    assert answer.facts.context["documents_whole"] is True
    [document] = store.documents("alice", cid, default_embedder().name)
    store.remove_document("alice", cid, document.id)
    _, answer = ask_with(store, answerer, fake, "And tea?", cid=cid)
    assert "Dumplings" not in str(fake.streamed[-1]["messages"][0]) and not answer.facts.context.get("documents")


def test_a_long_file_name_is_clipped_and_the_answer_citing_it_stays_readable(store, answerer, fake):
    name = "a" * 240 + ".md"
    cid, answer = ask_with(store, answerer, fake, "What is on the menu?", Upload(name, b"Tea 3 yuan."))
    [document] = store.documents("alice", cid, default_embedder().name)
    assert len(document.name) == 200
    assert answer.facts.context["documents"][0]["document"] == document.name and "Echo:" in answer.content


def test_chunks_left_unembedded_are_embedded_later_and_belong_to_their_owner(store, fake):
    cid = store.create_conversation("alice", "doc")
    pages = read_pages("report.pdf", report_pdf(pages=3))
    store.add_document("alice", cid, "report.pdf", None, 3, 2000, chunk_pages("pdf", pages))
    name = default_embedder().name
    assert store.pending_chunks("bob", cid, name, 10) == [], "another visitor sees nothing"
    done, total = store.embedded_count("alice", cid, name)
    assert done == 0 and total > 3
    assert embed_documents(store, "alice", cid)
    assert store.embedded_count("alice", cid, name) == (total, total)
    assert all(c.vector is not None for c in store.document_chunks("alice", cid, name))
    with pytest.raises(KeyError):
        store.remove_document("bob", cid, store.documents("alice", cid, name)[0].id)
