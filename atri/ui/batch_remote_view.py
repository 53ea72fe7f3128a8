"""The Batch page's side of a run sent to DashScope's Batch API: the offer, its state, its cancel and its saving.

The run is polled by the server (atri.batch_remote), not by this page: the page only reads the saved run.
"""
from __future__ import annotations

import streamlit as st

from atri.batch import RunView, load_run
from atri.batch_api import CANCELLABLE, with_saving
from atri.batch_remote import RemoteBatches
from atri.errors import ChatError
from atri.i18n import STRINGS, t
from atri.pricing import format_cost
from atri.providers import Provider
from atri.safe_markdown import plain_text
from atri.settings import Settings
from atri.ui.config import get_store, services
from atri.ui.error_text import error_text
from atri.ui.identity import current_owner

NOW, BATCH_API = "now", "batch_api"
FOLLOW_EVERY_S = 5.0  # the page rereads the saved run this often while the provider works on it


def remote_batches(settings: Settings) -> RemoteBatches:
    return services().remote_batches(settings)


def delivery(lang: str, provider: Provider) -> str:
    """Real time, or the provider's Batch API: offered only by a provider that has one."""
    if not provider.batch_api:
        return NOW
    return st.radio(t(lang, "batch_delivery"), [NOW, BATCH_API], horizontal=True, key="batch_delivery",
                    format_func=lambda choice: t(lang, f"batch_delivery_{choice}"), help=t(lang, "batch_api_help")) or NOW


def remote_state(lang: str, view: RunView, settings: Settings) -> None:
    """Where the provider is with the batch, its counts, and (while it works) that the server polls it."""
    state = view.remote
    status = str(state.get("status") or "validating")
    counts = state.get("counts") or {}
    st.caption(t(lang, "batch_api_submitted", batch=plain_text(str(state.get("batch_id") or "—"))))
    known = f"batch_api_state_{status}" in STRINGS  # a state the provider added since: said as it sent it
    line = t(lang, "batch_api_state", state=t(lang, f"batch_api_state_{status}") if known else plain_text(status[:40]))
    if counts.get("total"):
        line += " · " + t(lang, "batch_api_counts", completed=counts.get("completed", 0), total=counts["total"],
                          failed=counts.get("failed", 0))
    st.markdown(f":material/cloud_sync: {line}")
    if state.get("truncated"):
        st.warning(t(lang, "batch_api_truncated"))
    if not view.finished:
        st.caption(t(lang, "batch_api_polling", seconds=settings.config.batch_poll_s))
    saving(lang, view)


def saving(lang: str, view: RunView) -> None:
    found = with_saving(view)
    currency = view.totals.currency
    if found is None or not currency:
        return
    full, saved = found
    st.success(t(lang, "batch_api_saving", full=format_cost(full, currency), cost=format_cost(view.totals.cost or 0.0, currency),
                 saved=format_cost(saved, currency)), icon=":material/savings:")


def cancel_button(lang: str, view: RunView, settings: Settings) -> None:
    if view.remote.get("status") in CANCELLABLE:
        st.button(t(lang, "batch_api_cancel"), key=f"batch_api_cancel::{view.id}", icon=":material/cancel:",
                  on_click=_cancel, args=(lang, view.id, settings))


def _cancel(lang: str, run_id: str, settings: Settings) -> None:
    try:
        remote_batches(settings).cancel(current_owner(), run_id)
    except ChatError as error:
        st.error(error_text(lang, error.kind, error.detail))


def load(run_id: str) -> RunView | None:
    return load_run(get_store(), current_owner(), run_id)
