"""The Batch page: many prompts (or one prompt across settings) against one model, live, then saved.

The run itself lives in the process (atri.batch.BatchRunner): this page starts it, follows it in a
fragment that redraws twice a second, and stops it. A click elsewhere or a reload only reattaches.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from atri.batch import DONE, STOPPED, BatchRunner, RunView, load_run, to_csv, to_jsonl
from atri.batch_plan import DEFAULT_CONCURRENCY, MAX_CONCURRENCY, BatchSpec, Variant, batch_spec, parse_numbers, prompts_from, sweep_spec
from atri.calls import Target
from atri.errors import ChatError
from atri.i18n import t
from atri.pricing import format_cost, price_table
from atri.providers import Thinking, catalogue
from atri.safe_markdown import defuse_images, plain_text
from atri.settings import Settings
from atri.tables import BatchInputError, Table, read_table_isolated, table_from_lines
from atri.tokenizer import counter_for
from atri.ui.access import host_connection
from atri.ui.batch_remote_view import BATCH_API, cancel_button, delivery, load, remote_batches, remote_state
from atri.ui.batch_remote_view import FOLLOW_EVERY_S as REMOTE_EVERY_S
from atri.ui.config import get_store, services
from atri.ui.error_text import error_text
from atri.ui.identity import current_owner

FOLLOW_EVERY_S = 0.5
ANSWER_PREVIEW_CHARS = 300
OPEN_RUN = "batch_open"  # the run this tab shows
STATUS_ICONS = {"queued": "⏳", "running": "🔄", "done": "✅", "failed": "❌", "stopped": "⏹️", "expired": "⌛"}


def get_runner() -> BatchRunner:
    """The process's batch runs (one set per database)."""
    return services().batch_runner


# --- which model (shared with the Extract page) ---


def model_choices(settings: Settings, vision_only: bool = False) -> list[str]:
    """'provider · model' for every model the host set up (and the embedded one)."""
    choices = []
    for provider in settings.offered_providers().values():
        if provider.embedded or (settings.is_configured(provider) and settings.connection(provider)):
            models = list(provider.models) or [provider.model(settings.default_model_for(provider))]
            choices += [f"{provider.id} · {m.id}" for m in models if m.vision or not vision_only]
    return choices


def model_of(choice: str):
    provider_id, model_id = choice.split(" · ", 1)
    provider = catalogue()[provider_id]
    return provider, provider.model(model_id)


def target_for(settings: Settings, choice: str, lang: str) -> Target | None:
    """The connection, model, price and token counter for a choice; None (with the reason shown) if unreachable."""
    provider, model = model_of(choice)
    price = price_table(settings.config.prices_file).get(model.id)
    connection, count = host_connection(settings, provider, lang)
    if provider.embedded:
        return Target(connection, connection.provider.model(model.id), price, count) if connection else None
    if connection is None:
        st.error(t(lang, "error_no_connection"))
        return None
    return Target(connection, model, price, counter_for(model.id, settings.config.cache_dir))


@st.cache_data(max_entries=16, show_spinner=False)
def _read_upload(name: str, data: bytes) -> Table | BatchInputError:
    """A file is read once, not at every rerun while it is attached; a refusal is kept as well as a table."""
    try:
        return read_table_isolated(name, data)
    except BatchInputError as error:
        return error


def _uploaded_table(name: str, data: bytes) -> Table:
    outcome = _read_upload(name, data)
    if isinstance(outcome, BatchInputError):
        raise outcome
    return outcome


def refusal(lang: str, error: BatchInputError) -> None:
    """The reason, in the visitor's language: names and texts made plain, numbers kept (`{limit:,}`)."""
    st.error(t(lang, error.key, **{k: plain_text(v) if isinstance(v, str) else v for k, v in error.values.items()}))


# --- the form ---


def _prompts_spec(lang: str, provider_id: str, model_id: str, model, concurrency: int) -> BatchSpec | None:
    source = st.radio(t(lang, "batch_source"), ["lines", "file"], horizontal=True, key="batch_source",
                      format_func=lambda s: t(lang, f"batch_source_{s}"))
    table = None
    try:
        if source == "lines":
            text = st.text_area(t(lang, "batch_prompts"), key="batch_lines", height=160,
                                placeholder=t(lang, "batch_prompts_placeholder"))
            table = table_from_lines(text) if text.strip() else None
        else:
            upload = st.file_uploader(t(lang, "batch_file"), type=["csv", "tsv", "txt", "xlsx"], key="batch_file")
            table = _uploaded_table(upload.name, upload.getvalue()) if upload else None
    except BatchInputError as error:
        refusal(lang, error)
    template = st.text_input(t(lang, "batch_template"), key="batch_template", help=t(lang, "batch_template_help"),
                             placeholder="Translate into English: {text}")
    column = None
    if table is not None and len(table.columns) > 1 and not template.strip():
        guess = next((i for i, c in enumerate(table.columns) if c.lower() in ("prompt", "text", "question", "提示词")), 0)
        column = st.selectbox(t(lang, "batch_column"), table.columns, index=guess, key="batch_column")
    left, middle, right = st.columns(3)
    temperature = left.slider(t(lang, "temperature"), 0.0, 2.0, 0.7, 0.1, key="batch_temperature")
    can_switch = model.thinking == Thinking.HYBRID
    thinking = middle.toggle(t(lang, "thinking"), key="batch_thinking", disabled=not can_switch,
                             help=None if can_switch else t(lang, "thinking_unavailable"))
    budget = right.number_input(t(lang, "thinking_budget"), 0, 1_000_000, 0, 256, key="batch_budget",
                                disabled=not (thinking and can_switch), help=t(lang, "batch_budget_help"))
    with st.expander(t(lang, "batch_more")):
        system_prompt = st.text_area(t(lang, "system_prompt"), key="batch_system", height=80)
        json_mode = st.toggle(t(lang, "json_mode"), key="batch_json")
    if table is None:
        return None
    try:
        prompts = prompts_from(table, template, column)
        variant = Variant(temperature, bool(thinking and can_switch), int(budget) or None)
        return batch_spec(provider_id, model_id, prompts, variant, concurrency=concurrency,
                          system_prompt=system_prompt.strip(), json_mode=json_mode)
    except BatchInputError as error:
        refusal(lang, error)
        return None


def _sweep_spec(lang: str, provider_id: str, model, concurrency: int) -> BatchSpec | None:
    prompt = st.text_area(t(lang, "batch_sweep_prompt"), key="batch_sweep_prompt", height=100)
    left, middle, right = st.columns(3)
    temperatures = left.text_input(t(lang, "batch_sweep_temperatures"), "0.2, 0.7, 1.2", key="batch_sweep_temperatures")
    hybrid = model.thinking == Thinking.HYBRID
    thinking = middle.multiselect(t(lang, "batch_sweep_thinking"), ["off", "on"], default=["off", "on"] if hybrid else ["off"],
                                  format_func=lambda v: t(lang, f"batch_thinking_{v}"), key=f"batch_sweep_thinking::{hybrid}")
    budgets = right.text_input(t(lang, "batch_sweep_budgets"), "", key="batch_sweep_budgets",
                               placeholder="256, 2048", help=t(lang, "batch_budget_help"))
    system_prompt = st.text_area(t(lang, "system_prompt"), key="batch_sweep_system", height=68)
    if not prompt.strip():
        return None
    try:
        return sweep_spec(provider_id, model, prompt, parse_numbers(temperatures), [v == "on" for v in thinking],
                          parse_numbers(budgets, int), concurrency=concurrency, system_prompt=system_prompt.strip())
    except BatchInputError as error:
        refusal(lang, error)
        return None


# --- drawing a run ---


def _cost(amount: float | None, currency: str | None) -> str:
    return format_cost(amount, currency) if amount is not None and currency else "—"


def _frame(lang: str, view: RunView) -> pd.DataFrame:
    rows = []
    for row in view.rows:
        status = f"{STATUS_ICONS.get(row.status, '')} {t(lang, 'batch_status_' + row.status)}"
        if row.waiting_s is not None:
            status += " · " + t(lang, "batch_waiting", seconds=row.waiting_s)
        answer = row.answer if len(row.answer) <= ANSWER_PREVIEW_CHARS else row.answer[:ANSWER_PREVIEW_CHARS] + "…"
        if row.error_kind and row.status != STOPPED:
            answer = error_text(lang, row.error_kind, row.error_detail)
        answered = bool(row.total_s or row.prompt_tokens)  # a batch's rows have tokens but no timings
        entry = {"#": row.index + 1, t(lang, "batch_col_status"): status, t(lang, "batch_col_prompt"): row.prompt}
        if view.kind == "sweep":
            entry[t(lang, "batch_col_settings")] = row.variant.label()
        entry.update({
            t(lang, "batch_col_answer"): answer,
            t(lang, "batch_col_ttft"): row.ttft_s,
            t(lang, "batch_col_total"): row.total_s,
            t(lang, "batch_col_tokens"): f"{row.prompt_tokens:,} / {row.completion_tokens:,}" if answered else "",
            t(lang, "batch_col_cost"): _cost(row.cost, row.currency) if answered else "",
        })
        rows.append(entry)
    return pd.DataFrame(rows)


def _table(lang: str, view: RunView) -> None:
    number = st.column_config.NumberColumn(format="%.2f s")
    st.dataframe(_frame(lang, view), hide_index=True, width="stretch",
                 column_config={t(lang, "batch_col_ttft"): number, t(lang, "batch_col_total"): number})


def _progress(lang: str, view: RunView) -> None:
    totals = view.totals
    ended = totals.done + totals.failed + totals.stopped
    st.progress(ended / max(1, totals.rows), text=t(lang, "batch_progress", ended=ended, rows=totals.rows,
                                                     running=totals.running, failed=totals.failed))


def _totals(lang: str, view: RunView) -> None:
    totals = view.totals
    mark = "≈" if totals.estimated else ""
    st.caption(t(lang, "batch_totals", done=totals.done, failed=totals.failed, stopped=totals.stopped,
                 prompt=f"{mark}{totals.prompt_tokens:,}", completion=f"{mark}{totals.completion_tokens:,}",
                 cost=_cost(totals.cost, totals.currency), seconds=view.wall_s or 0.0, concurrency=view.concurrency))


def _finished(lang: str, view: RunView, settings: Settings, unsaved: bool = False) -> None:
    st.subheader(plain_text(view.title) or t(lang, "batch_title"))
    st.caption(f"{plain_text(view.provider_id)} · {plain_text(view.model_id)} · "
               f"{view.started_at:%Y-%m-%d %H:%M} UTC · {t(lang, 'batch_run_' + view.status)}")
    if view.remote:
        remote_state(lang, view, settings)
    if unsaved:
        st.warning(t(lang, "batch_unsaved"), icon=":material/sync_problem:")
    not_done = sum(row.status != DONE for row in view.rows)
    if view.status in ("stopped", "interrupted") and not_done and not view.remote:
        st.button(t(lang, "batch_resume", rows=not_done), key=f"batch_resume::{view.id}", icon=":material/resume:",
                  on_click=_resume, args=(settings, view, lang))
    _progress(lang, view)
    _table(lang, view)
    _totals(lang, view)
    with st.container(horizontal=True):  # side by side, not spread over half the page
        st.download_button(t(lang, "batch_download_csv"), to_csv(view.rows), f"atri-batch-{view.id[:8]}.csv",
                           "text/csv", key=f"batch_csv::{view.id}", icon=":material/download:")
        st.download_button(t(lang, "batch_download_jsonl"), to_jsonl(view.rows), f"atri-batch-{view.id[:8]}.jsonl",
                           "application/jsonl", key=f"batch_jsonl::{view.id}", icon=":material/download:")
    if view.kind == "sweep":
        _side_by_side(lang, view)


def _side_by_side(lang: str, view: RunView) -> None:
    st.subheader(t(lang, "batch_side_by_side"))
    per_line = 3
    for start in range(0, len(view.rows), per_line):
        for column, row in zip(st.columns(per_line), view.rows[start:start + per_line]):
            with column.container(border=True):
                st.markdown(f"**{plain_text(row.variant.label())}**")
                if row.error_kind and row.status != STOPPED:
                    st.error(error_text(lang, row.error_kind, row.error_detail))
                if row.reasoning:
                    with st.expander(t(lang, "batch_reasoning", tokens=row.reasoning_tokens)):
                        st.markdown(defuse_images(row.reasoning))
                st.markdown(defuse_images(row.answer) or "—")


def _resume(settings: Settings, view: RunView, lang: str) -> None:
    target = target_for(settings, f"{view.provider_id} · {view.model_id}", lang)
    if target is not None:
        try:
            st.session_state[OPEN_RUN] = get_runner().resume(current_owner(), view, target).id
        except BatchInputError as error:
            refusal(lang, error)


@st.fragment(run_every=FOLLOW_EVERY_S)
def _follow(lang: str, run_id: str) -> None:
    """Redraws the live run twice a second; when it has ended, the whole page draws it once more, finished."""
    run = get_runner().get(current_owner(), run_id)
    if run is None:
        return
    view = run.view()
    if view.finished:
        st.rerun()
    st.subheader(plain_text(view.title))
    _progress(lang, view)
    _table(lang, view)
    _totals(lang, view)
    st.button(t(lang, "stop"), key="batch_stop", icon=":material/stop_circle:", on_click=run.stop)


@st.fragment(run_every=REMOTE_EVERY_S)
def _follow_remote(lang: str, run_id: str, settings: Settings) -> None:
    """A run at the provider's Batch API, reread from the database (the server polls the provider)."""
    view = load(run_id)
    if view is None:
        return
    if view.finished:
        st.rerun()
    st.subheader(plain_text(view.title))
    remote_state(lang, view, settings)
    cancel_button(lang, view, settings)
    _progress(lang, view)
    _table(lang, view)


def _start(lang: str, settings: Settings, choice: str, spec: BatchSpec, how: str) -> None:
    target = target_for(settings, choice, lang)
    if target is None:
        return
    try:
        if how == BATCH_API:
            st.session_state[OPEN_RUN] = remote_batches(settings).submit(current_owner(), spec, target)
        else:
            st.session_state[OPEN_RUN] = get_runner().start(current_owner(), spec, target).id
    except BatchInputError as error:
        refusal(lang, error)
    except ChatError as error:  # the provider refused the file or the batch; a quota
        st.error(error_text(lang, error.kind, error.detail))


def _last_runs(lang: str, owner: str) -> None:
    runs = get_store().batch_runs(owner, limit=10)
    with st.expander(t(lang, "batch_last_runs"), expanded=False):
        if not runs:
            st.caption(t(lang, "batch_no_runs"))
        for run in runs:
            label = (f"{run['created_at']:%Y-%m-%d %H:%M} · {plain_text(run['title'])} · {plain_text(run['model'] or '')} · "
                     + t(lang, "batch_run_line", rows=run["rows"], failed=run["failed"], cost=_cost(run["cost"], run["currency"])))
            if run["status"] != "done":
                label += f" · {t(lang, 'batch_run_' + run['status'])}"
            st.button(label, key=f"batch_reopen::{run['id']}", type="tertiary", icon=":material/history:",
                      on_click=lambda run_id=run["id"]: st.session_state.update({OPEN_RUN: run_id}))


def batch_page(settings: Settings, lang: str) -> None:
    st.title(t(lang, "batch_title"))
    st.caption(t(lang, "batch_intro"))
    owner = current_owner()
    choices = model_choices(settings)
    if not choices:
        st.info(t(lang, "tools_setup_hint"))
        return
    choice = st.selectbox(t(lang, "model"), choices, key="batch_model")
    provider, model = model_of(choice)
    mode = st.segmented_control(t(lang, "batch_mode"), ["prompts", "sweep"], default="prompts", key="batch_mode",
                                format_func=lambda m: t(lang, f"batch_mode_{m}")) or "prompts"
    how = delivery(lang, provider)
    concurrency = DEFAULT_CONCURRENCY  # the provider's Batch API sets its own pace
    if how != BATCH_API:
        concurrency = int(st.number_input(t(lang, "batch_concurrency"), 1, MAX_CONCURRENCY, DEFAULT_CONCURRENCY,
                                          key="batch_concurrency", help=t(lang, "batch_concurrency_help")))
    if mode == "sweep":
        spec = _sweep_spec(lang, provider.id, model, concurrency)
    else:
        spec = _prompts_spec(lang, provider.id, model.id, model, concurrency)
    if spec is not None:
        st.caption(t(lang, "batch_ready", count=len(spec.rows)))
    if st.button(t(lang, "batch_api_submit" if how == BATCH_API else "batch_start"), type="primary",
                 disabled=spec is None, key="batch_start", icon=":material/play_arrow:"):
        _start(lang, settings, choice, spec, how)

    run_id = st.session_state.get(OPEN_RUN)
    if run_id:
        live = get_runner().get(owner, run_id)
        if live is not None and not live.finished.is_set():
            _follow(lang, run_id)
        else:
            view = live.view() if live is not None else load_run(get_store(), owner, run_id)
            if view is None:
                st.warning(t(lang, "batch_run_not_found"))
            elif view.remote and not view.finished:
                _follow_remote(lang, run_id, settings)
            else:
                _finished(lang, view, settings, unsaved=live is not None and not live.saved.is_set())
    _last_runs(lang, owner)
