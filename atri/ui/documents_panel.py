"""The open conversation's documents in the sidebar: name, size in tokens, indexing progress, remove."""
from __future__ import annotations

import streamlit as st

from atri.context import EMBEDDER_NAME
from atri.i18n import t
from atri.safe_markdown import plain_text
from atri.store import DocumentInfo, Snapshot
from atri.ui.config import get_answerer, get_store
from atri.ui.identity import current_owner

INDEXING_REFRESH_S = 3.0


def conversation_documents(view: Snapshot) -> list[DocumentInfo]:
    """Read on every run: the indexing progress moves without the conversation changing."""
    return get_store().documents(current_owner(), view.cid, EMBEDDER_NAME) if view.cid else []


def document_label(lang: str, document: DocumentInfo, progress: bool = False) -> str:
    pages = t(lang, "document_pages", pages=document.pages) if document.pages else ""
    label = f"{plain_text(document.name)} · {t(lang, 'document_size', pages=pages, tokens=document.tokens)}"
    if progress and document.embedded < document.chunks:
        label += t(lang, "document_indexing", percent=100 * document.embedded // max(1, document.chunks))
    return label


def _remove(cid: str, document_id: int) -> None:
    try:
        get_store().remove_document(current_owner(), cid, document_id)
    except KeyError:
        pass  # removed already (another tab)


def documents_sidebar(lang: str, view: Snapshot, documents: list[DocumentInfo]) -> None:
    if not documents:
        return
    with st.sidebar:
        if any(d.embedded < d.chunks for d in documents):
            get_answerer().embed_later(current_owner(), view.cid)  # after a restart, nothing else would
            _indexing_list(lang, view)
        else:
            _document_list(lang, view.cid, documents)


@st.fragment(run_every=INDEXING_REFRESH_S)
def _indexing_list(lang: str, view: Snapshot) -> None:
    """While a document is being embedded, its progress moves on its own (only this list redraws)."""
    _document_list(lang, view.cid, conversation_documents(view))


def _document_list(lang: str, cid: str | None, documents: list[DocumentInfo]) -> None:
    with st.expander(f"{t(lang, 'documents_header')} ({len(documents)})", icon=":material/description:",
                     expanded=True):
        for document in documents:
            left, right = st.columns([6, 1], vertical_alignment="center")
            left.caption(document_label(lang, document, progress=True))
            if right.button("", icon=":material/delete:", key=f"remove_document::{document.id}",
                            help=t(lang, "document_remove", name=plain_text(document.name))):
                _remove(cid, document.id)
                st.rerun()  # the whole page: the question's label of the document goes too
