"""The Usage page: this visitor's tokens, cost, speed and errors (everyone's, for the host), as charts and tables."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from atri.i18n import t
from atri.pricing import format_cost
from atri.settings import Settings
from atri.ui.config import get_store
from atri.ui.identity import current_owner
from atri.usage import DateRange, UsageInputError, UsageReport, admin_configured, is_admin, model_rows, to_csv, usage_report

ADMIN = "usage_admin"  # this session entered the admin password
DEFAULT_DAYS = 30


def _costs(costs: dict[str, float]) -> str:
    return " + ".join(format_cost(amount, currency) for currency, amount in sorted(costs.items())) or "—"


def _cost(amount: float | None, currency: str | None) -> str:
    return format_cost(amount, currency) if amount is not None and currency else "—"


def _compact(count: int) -> str:
    """64,249,905 → 64.2M: a headline number that fits its column (the exact one is in its tooltip)."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e4, "K")):
        if count >= size:
            return f"{count / size:.1f}{suffix}"
    return f"{count:,}"


def _admin(lang: str, settings: Settings) -> bool:
    """The host's switch to everyone's usage: only with ATRI_ADMIN_PASSWORD set and entered."""
    with st.expander(t(lang, "usage_admin"), icon=":material/admin_panel_settings:"):
        if st.session_state.get(ADMIN):
            st.button(t(lang, "usage_admin_leave"), key="usage_admin_leave",
                      on_click=lambda: st.session_state.update({ADMIN: False}))
        elif not admin_configured(settings.values):
            st.caption(t(lang, "usage_admin_unset"))
        else:
            with st.form("usage_admin_form", clear_on_submit=True, border=False):
                entered = st.text_input(t(lang, "usage_admin_password"), type="password", key="usage_password")
                if st.form_submit_button(t(lang, "usage_admin_enter")):
                    if is_admin(settings.values, entered):
                        st.session_state[ADMIN] = True
                        st.rerun()
                    st.error(t(lang, "usage_admin_wrong"))
    return bool(st.session_state.get(ADMIN)) and admin_configured(settings.values)


def _days(lang: str) -> DateRange | None:
    today = datetime.now(UTC).date()
    picked = st.date_input(t(lang, "usage_range"), value=(today - timedelta(days=DEFAULT_DAYS - 1), today),
                           key="usage_range", max_value=today + timedelta(days=1))
    if not isinstance(picked, (tuple, list)) or len(picked) != 2:
        st.info(t(lang, "usage_range_incomplete"))
        return None
    try:
        return DateRange.of(picked[0], picked[1])
    except UsageInputError as error:
        st.error(t(lang, error.key, **error.values))
        return None


def _headline(lang: str, report: UsageReport) -> None:
    errors = sum(row["answers"] for row in report.errors)
    columns = st.columns(4)
    columns[0].metric(t(lang, "usage_answers"), f"{report.answers:,}")
    columns[1].metric(t(lang, "usage_tokens"), f"{_compact(report.prompt_tokens)} / {_compact(report.completion_tokens)}",
                      help=f"{report.prompt_tokens:,} / {report.completion_tokens:,}")
    columns[2].metric(t(lang, "usage_cost"), _costs(report.cost))
    columns[3].metric(t(lang, "usage_errors_metric"), f"{errors / report.answers:.1%}" if report.answers else "—")
    if report.saved:
        st.caption(f":material/savings: {t(lang, 'usage_saved_line', saved=_costs(report.saved))}")


def _per_day(lang: str, report: UsageReport) -> None:
    frame = pd.DataFrame(report.by_day)
    frame["tokens"] = frame["prompt_tokens"] + frame["completion_tokens"]
    day, model = t(lang, "usage_col_day"), t(lang, "usage_col_model")
    frame = frame.rename(columns={"day": day, "model": model})
    left, right = st.columns(2)
    with left:
        st.subheader(t(lang, "usage_tokens_per_day"))
        st.altair_chart(alt.Chart(frame).mark_bar().encode(
            x=alt.X(f"{day}:T", timeUnit="yearmonthdate", title=day), y=alt.Y("sum(tokens):Q", title=t(lang, "usage_col_tokens")),
            color=alt.Color(f"{model}:N"), tooltip=[f"{day}:T", f"{model}:N", "sum(tokens):Q", "sum(answers):Q"]))
    priced = frame[frame["cost"].notna() & frame["currency"].notna()]
    with right:
        st.subheader(t(lang, "usage_cost_per_day"))
        if priced.empty:
            st.caption("—")
        else:
            st.altair_chart(alt.Chart(priced).mark_bar().encode(
                x=alt.X(f"{day}:T", timeUnit="yearmonthdate", title=day), y=alt.Y("sum(cost):Q", title=t(lang, "usage_cost")),
                color=alt.Color(f"{model}:N"), column=alt.Column("currency:N", title=None) if priced["currency"].nunique() > 1
                else alt.Undefined, tooltip=[f"{day}:T", f"{model}:N", "currency:N", alt.Tooltip("sum(cost):Q", format=".4f")]))


def _per_model(lang: str, report: UsageReport) -> None:
    st.subheader(t(lang, "usage_by_model"))
    rows = model_rows(report)
    frame = pd.DataFrame(rows)
    frame["cost"] = [_cost(r["cost"], r["currency"]) for r in rows]
    frame["saved"] = [_cost(r["saved"], r["currency"]) for r in rows]
    frame = frame.drop(columns=["currency"])
    def seconds(label: str) -> st.column_config.NumberColumn:
        return st.column_config.NumberColumn(t(lang, label), format="%.2f s")

    st.dataframe(frame, hide_index=True, width="stretch", column_config={
        **_headers(lang, "model", "answers", "errors", "prompt_tokens", "completion_tokens", "reasoning_tokens",
                   "cached_tokens", "cost", "saved"),
        "error_rate": st.column_config.NumberColumn(t(lang, "usage_errors_metric"), format="percent"),
        "ttft_median_s": seconds("usage_col_ttft_median"), "ttft_p95_s": seconds("usage_col_ttft_p95"),
        "total_median_s": seconds("usage_col_total_median"), "total_p95_s": seconds("usage_col_total_p95")})
    st.subheader(t(lang, "usage_times"))
    times = pd.DataFrame([{"model": r["model"], "measure": measure, "seconds": r[name]}
                          for r in rows for measure, name in (("first token · median", "ttft_median_s"),
                                                              ("first token · p95", "ttft_p95_s"),
                                                              ("total · median", "total_median_s"),
                                                              ("total · p95", "total_p95_s")) if r[name] is not None])
    if not times.empty:
        st.altair_chart(alt.Chart(times).mark_bar().encode(
            x=alt.X("seconds:Q"), y=alt.Y("model:N", title=None), color="measure:N", yOffset="measure:N",
            tooltip=["model:N", "measure:N", alt.Tooltip("seconds:Q", format=".2f")]))


def _errors(lang: str, report: UsageReport) -> None:
    st.subheader(t(lang, "usage_errors"))
    if not report.errors:
        st.caption(t(lang, "usage_no_errors"))
        return
    frame = pd.DataFrame(report.errors).rename(columns={"kind": t(lang, "usage_col_kind"), "answers": t(lang, "usage_answers"),
                                                        "share": t(lang, "usage_col_share")})
    st.dataframe(frame, hide_index=True, width="stretch",
                 column_config={t(lang, "usage_col_share"): st.column_config.NumberColumn(format="percent")})


def _conversations(lang: str, report: UsageReport, everyone: bool) -> None:
    st.subheader(t(lang, "usage_top_conversations"))
    rows = []
    for row in report.conversations:
        title = t(lang, "usage_deleted_chat") if row["deleted"] else row["title"] or t(lang, "untitled")
        entry = {t(lang, "usage_col_title"): title}
        if everyone:  # the owner's kind and a short prefix of its hash: enough to tell visitors apart
            entry[t(lang, "usage_col_owner")] = row["owner"][:16]
        entry.update({t(lang, "usage_answers"): row["answers"], t(lang, "usage_col_tokens"): row["tokens"],
                      t(lang, "usage_cost"): _cost(row["cost"], row["currency"])})
        rows.append(entry)
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    else:
        st.caption("—")


def _batch_runs(lang: str, report: UsageReport) -> None:
    if not report.batch_runs:
        return
    st.subheader(t(lang, "usage_batch_runs"))
    frame = pd.DataFrame([{**row, "cost": _cost(row["cost"], row["currency"])} for row in report.batch_runs])
    st.dataframe(frame.drop(columns=["currency"]), hide_index=True, width="stretch",
                 column_config=_headers(lang, "model", "runs", "rows", "failed", "prompt_tokens", "completion_tokens", "cost"))


def _your_data(lang: str) -> None:
    """"Delete my data": every chat's text, documents and shares erased for good, the usage kept anonymous."""
    with st.expander(t(lang, "usage_your_data"), icon=":material/delete_forever:"):
        st.caption(t(lang, "delete_my_data_help"))
        sure = st.checkbox(t(lang, "delete_my_data_confirm"), key="forget_me_sure")
        if st.button(t(lang, "delete_my_data"), key="forget_me", type="primary", disabled=not sure):
            count = get_store().forget_owner(current_owner())
            st.success(t(lang, "delete_my_data_done", count=count))


def _headers(lang: str, *columns: str) -> dict[str, str]:
    """Column titles in the visitor's language."""
    special = {"model": "usage_col_model", "answers": "usage_answers", "cost": "usage_cost"}
    return {column: t(lang, special.get(column, f"usage_col_{column}")) for column in columns}


def usage_page(settings: Settings, lang: str) -> None:
    st.title(t(lang, "usage_title"))
    st.caption(t(lang, "usage_intro"))
    everyone = _admin(lang, settings)
    st.caption(t(lang, "usage_scope_everyone" if everyone else "usage_scope_mine"))
    days = _days(lang)
    if days is None:
        return
    report = usage_report(get_store(), None if everyone else current_owner(), days)
    if report.empty:
        st.info(t(lang, "usage_empty"))
        if not everyone:
            _your_data(lang)
        return
    _headline(lang, report)
    if report.by_day:
        _per_day(lang, report)
        _per_model(lang, report)
        _errors(lang, report)
        _conversations(lang, report, everyone)
    _batch_runs(lang, report)
    stamp = f"{days.start:%Y%m%d}-{days.end:%Y%m%d}"
    with st.container(horizontal=True):  # side by side, not spread over half the page
        st.download_button(t(lang, "usage_download_models"), to_csv(model_rows(report)), f"atri-usage-models-{stamp}.csv",
                           "text/csv", key="usage_csv_models", icon=":material/download:")
        st.download_button(t(lang, "usage_download_days"), to_csv(report.by_day), f"atri-usage-days-{stamp}.csv",
                           "text/csv", key="usage_csv_days", icon=":material/download:")
    if not everyone:
        _your_data(lang)
