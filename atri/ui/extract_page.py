"""The Extract page: images or text in, JSON that matches a schema out, one row per source."""
from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import streamlit as st

from atri.extract import (
    TRAIN_TICKET_FIELDS,
    TRAIN_TICKET_URL,
    TYPES,
    Extraction,
    FieldSpec,
    Source,
    extract_many,
    fields_from_names,
    flatten,
    schema_from_fields,
    to_csv,
    to_json,
    train_ticket_schema,
)
from atri.i18n import t
from atri.images import BadImage, decode_data_url, image_from_bytes, parse_image_urls
from atri.pricing import format_cost
from atri.safe_markdown import plain_text
from atri.schemas import ExtractInputError, parse_schema_isolated
from atri.settings import Settings
from atri.ui.batch_page import model_choices, refusal, target_for
from atri.ui.error_text import error_text

RESULTS = "extract_results"
IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "gif", "bmp"]
BUILDER_START = [{"name": "name", "type": "string", "description": "", "required": True}]


EXAMPLE_MODEL = "qwen3-vl-plus"  # the tutorial's


def _load_example(choices: list[str]) -> None:
    example = next((c for c in choices if c.endswith(f" · {EXAMPLE_MODEL}")), None)
    if example:
        st.session_state["extract_model"] = example
    st.session_state.update({"extract_source": "images", "extract_urls": TRAIN_TICKET_URL, "extract_what": "names",
                             "extract_names": TRAIN_TICKET_FIELDS,
                             "extract_schema": json.dumps(train_ticket_schema(), ensure_ascii=False, indent=2)})


def _sources(lang: str, kind: str) -> list[Source]:
    if kind == "text":
        text = st.text_area(t(lang, "extract_text"), key="extract_text", height=160)
        return [Source("text", text=text.strip())] if text.strip() else []
    urls = st.text_area(t(lang, "extract_image_urls"), key="extract_urls", height=80)
    uploads = st.file_uploader(t(lang, "extract_upload"), type=IMAGE_TYPES, accept_multiple_files=True,
                               key="extract_files") or []
    found = parse_image_urls(urls)
    problems = list(found.problems)
    sources = [Source(url, image=url) for url in found.urls]
    for upload in uploads:
        try:
            url, thumbnail = image_from_bytes(upload.name, upload.getvalue())
        except BadImage as refused:
            problems.append((refused.key, refused.values))
            continue
        sources.append(Source(upload.name, image=url, thumbnail=thumbnail))
    for key, values in problems:
        st.warning(t(lang, key, **{k: plain_text(str(v)) for k, v in values.items()}))
    return sources


def _schema(lang: str, what: str) -> dict | None:
    try:
        if what == "names":
            st.session_state.setdefault("extract_names", TRAIN_TICKET_FIELDS)
            names = st.text_area(t(lang, "extract_field_names"), key="extract_names", height=150)
            return schema_from_fields(fields_from_names(names))
        if what == "builder":
            st.caption(t(lang, "extract_builder_help"))
            edited = st.data_editor(pd.DataFrame(BUILDER_START), num_rows="dynamic", key="extract_builder", width="stretch",
                                    column_config={
                                        "name": st.column_config.TextColumn(t(lang, "extract_col_name"), required=True),
                                        "type": st.column_config.SelectboxColumn(t(lang, "extract_col_type"), options=TYPES,
                                                                                 default="string", required=True),
                                        "description": st.column_config.TextColumn(t(lang, "extract_col_description")),
                                        "required": st.column_config.CheckboxColumn(t(lang, "extract_col_required"),
                                                                                    default=True)})
            fields = [FieldSpec(str(row["name"]).strip(), str(row["type"] or "string"), str(row["description"] or ""),
                                bool(row["required"])) for row in edited.to_dict("records") if str(row["name"] or "").strip()]
            return schema_from_fields(fields)
        st.session_state.setdefault("extract_schema", json.dumps(train_ticket_schema(), ensure_ascii=False, indent=2))
        pasted = st.text_area(t(lang, "extract_schema"), key="extract_schema", height=220)
        return _schema_from(pasted)
    except ExtractInputError as error:
        refusal(lang, error)
        return None


@st.cache_data(max_entries=16, show_spinner=False)
def _parsed_schema(text: str) -> dict[str, Any] | ExtractInputError:
    """Checked once, not at every rerun; a refusal is kept as well as a schema."""
    try:
        return parse_schema_isolated(text)
    except ExtractInputError as error:
        return error


def _schema_from(text: str) -> dict[str, Any]:
    outcome = _parsed_schema(text)
    if isinstance(outcome, ExtractInputError):
        raise outcome
    return outcome


def _picture(source: Source) -> None:
    """Uploads as their thumbnail; a web image stays a link (nothing loads from elsewhere by itself)."""
    if source.thumbnail:
        picture = decode_data_url(source.thumbnail)
        if picture:
            st.image(picture, width="stretch")
    elif source.image:
        st.markdown(f"[:material/image: {plain_text(urlsplit(source.image).netloc)}](<{source.image.replace('>', '%3E')}>)")
    else:
        st.caption(plain_text(source.text[:300]))


def _result(lang: str, index: int, extraction: Extraction) -> None:
    with st.container(border=True):
        left, right = st.columns([1, 2])
        with left:
            label = extraction.source.label
            st.markdown(f"**{index + 1}. {plain_text(label if len(label) <= 60 else label[:59] + '…')}**")
            _picture(extraction.source)
        with right:
            st.markdown(t(lang, f"extract_status_{extraction.status}"))
            for note in extraction.notes:
                st.caption(t(lang, note))
            if extraction.error_kind:
                st.error(error_text(lang, extraction.error_kind, extraction.error_detail))
                return
            reading = extraction.reading
            if reading and reading.repaired:
                st.warning(t(lang, "extract_repaired"))
            if extraction.retried:
                st.caption(t(lang, "extract_retried"))
            if reading and reading.data is None:
                st.error(t(lang, "extract_not_json", error=plain_text(reading.parse_error or "")))
            if reading and reading.errors:
                st.warning(t(lang, "extract_errors") + "\n" + "\n".join(f"- {plain_text(e)}" for e in reading.errors))
            if extraction.data is not None:
                rows = [{t(lang, "extract_field"): key, t(lang, "extract_value"): "" if value is None else str(value)}
                        for key, value in flatten(extraction.data).items()]
                st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
            with st.expander(t(lang, "extract_raw")):
                st.code(extraction.raw or "—", language="json", wrap_lines=True)


def _results(lang: str, extractions: list[Extraction]) -> None:
    costs = [e.cost for e in extractions if e.cost is not None]
    currency = next((e.currency for e in extractions if e.currency), None)
    st.caption(t(lang, "extract_totals", count=len(extractions), valid=sum(e.status == "valid" for e in extractions),
                 invalid=sum(e.status == "invalid" for e in extractions),
                 failed=sum(e.status == "failed" for e in extractions),
                 prompt=sum(e.prompt_tokens for e in extractions), completion=sum(e.completion_tokens for e in extractions),
                 cost=format_cost(sum(costs), currency) if costs and currency else "—"))
    with st.container(horizontal=True):  # side by side, not spread over half the page
        st.download_button(t(lang, "extract_download_csv"), to_csv(extractions), "atri-extract.csv", "text/csv",
                           key="extract_csv", icon=":material/download:")
        st.download_button(t(lang, "extract_download_json"), to_json(extractions), "atri-extract.json",
                           "application/json", key="extract_json", icon=":material/download:")
    for index, extraction in enumerate(extractions):
        _result(lang, index, extraction)


def extract_page(settings: Settings, lang: str) -> None:
    st.title(t(lang, "extract_title"))
    st.caption(t(lang, "extract_intro"))
    choices = model_choices(settings)
    if not choices:
        st.info(t(lang, "tools_setup_hint"))
        return
    seeing = [c for c in choices if c in model_choices(settings, vision_only=True)]
    st.button(t(lang, "extract_example"), key="extract_example", icon=":material/train:", on_click=_load_example,
              args=(choices,))
    choice = st.selectbox(t(lang, "model"), choices, index=choices.index(seeing[0]) if seeing else 0, key="extract_model")
    st.session_state.setdefault("extract_source", "images" if seeing else "text")  # no model here can see
    st.session_state.setdefault("extract_what", "names")
    kind = st.segmented_control(t(lang, "extract_source"), ["images", "text"], key="extract_source",
                                format_func=lambda k: t(lang, f"extract_source_{k}")) or "images"
    sources = _sources(lang, kind)
    what = st.segmented_control(t(lang, "extract_what"), ["names", "builder", "schema"], key="extract_what",
                                format_func=lambda w: t(lang, f"extract_what_{w}")) or "names"
    schema = _schema(lang, what)
    if schema is not None:
        with st.expander(t(lang, "extract_schema_sent")):
            st.json(schema)
    if st.button(t(lang, "extract_start"), type="primary", key="extract_start", disabled=schema is None,
                 icon=":material/data_object:"):
        target = target_for(settings, choice, lang)
        if target is not None:
            try:
                with st.spinner(t(lang, "extract_running", count=len(sources))):
                    st.session_state[RESULTS] = asyncio.run(extract_many(target, sources, schema))
            except ExtractInputError as error:
                st.session_state.pop(RESULTS, None)
                refusal(lang, error)
    if st.session_state.get(RESULTS):
        _results(lang, st.session_state[RESULTS])
