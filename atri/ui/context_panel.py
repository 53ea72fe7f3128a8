"""The sidebar's context controls and meter, and the per-conversation totals."""
from __future__ import annotations

import streamlit as st

from atri.context import STRATEGIES, ContextSettings, input_budget, plan_context
from atri.i18n import t
from atri.messages import Message
from atri.pricing import Totals, answer_cost, answer_saving, price_table
from atri.providers import ModelInfo
from atri.store import Snapshot
from atri.tokens import TokenCounter, schema_tokens
from atri.tools import Toolbox
from atri.ui.config import get_store, load_settings
from atri.ui.identity import current_owner
from atri.ui.render import cache_totals, usage_line
from atri.ui.session import CONTEXT_PREFIX, session

DEFAULTS = ContextSettings()
NEXT_QUESTION = Message("user", "")  # stands in for the question not yet typed
KEYS = {field: CONTEXT_PREFIX + field for field in ("strategy", "last_n", "summary_share", "recall_k", "recall_with_summary")}


def load_for_conversation(view: Snapshot) -> None:
    """Put the conversation's saved context choices into the widgets, once per switch."""
    if session.context_loaded_for == view.cid:
        return
    session.context_loaded_for = view.cid
    saved = ContextSettings.from_dict(view.info.settings.get("context") if view.info else None)
    for field, key in KEYS.items():
        st.session_state[key] = getattr(saved, field)


def _save(cid: str | None) -> None:
    if cid:
        get_store().update_settings(current_owner(), cid, {"context": current_settings().to_dict()})


def current_settings() -> ContextSettings:
    return ContextSettings(**{field: st.session_state.get(key, getattr(DEFAULTS, field)) for field, key in KEYS.items()})


def context_controls(lang: str, view: Snapshot) -> ContextSettings:
    cid = view.cid
    load_for_conversation(view)
    for field, key in KEYS.items():
        st.session_state.setdefault(key, getattr(DEFAULTS, field))
    st.subheader(t(lang, "context"))
    strategy = st.selectbox(t(lang, "strategy"), STRATEGIES, key=KEYS["strategy"], on_change=_save, args=(cid,),
                            persist_state="session", format_func=lambda s: t(lang, f"strategy_{s}"))
    if strategy != "full":
        st.slider(t(lang, "last_n"), 1, 30, key=KEYS["last_n"], on_change=_save, args=(cid,), persist_state="session")
    if strategy == "recall":
        st.slider(t(lang, "recall_k"), 1, 8, key=KEYS["recall_k"], on_change=_save, args=(cid,), persist_state="session")
        st.toggle(t(lang, "recall_with_summary"), key=KEYS["recall_with_summary"], on_change=_save, args=(cid,), persist_state="session")
    if strategy == "summary" or (strategy == "recall" and st.session_state.get(KEYS["recall_with_summary"])):
        st.slider(t(lang, "summary_share"), 0.3, 0.95, step=0.05, key=KEYS["summary_share"], on_change=_save, args=(cid,),
                  persist_state="session")
    return current_settings()


def meter(lang: str, view: Snapshot, settings: ContextSettings, system_prompt: str, model: ModelInfo,
          count: TokenCounter, tools: Toolbox | None = None) -> None:
    """Estimated input tokens of the next request (before the new question), against the window; the schemas
    of the tools it would offer count too."""
    summary = view.info.summary if view.info else None
    budget = input_budget(model)
    offered = tools.schemas() if tools and model.tools else []
    plan = plan_context(view.messages + [NEXT_QUESTION], settings, system_prompt, budget, count, summary,
                        tool_tokens=schema_tokens(offered, count))
    st.progress(min(1.0, plan.input_tokens / budget), text=t(lang, "context_meter", tokens=plan.input_tokens, budget=budget))


def conversation_totals(lang: str, view: Snapshot) -> None:
    prices = price_table(load_settings().config.prices_file)
    totals = Totals()
    for answer in view.answers:
        facts = answer.facts
        if facts and facts.usage:
            thought, price = bool(answer.reasoning), prices.get(facts.model)
            totals.add(facts.usage, *answer_cost(facts, thought, price), saved=answer_saving(facts, thought, price))
    if not totals.prompt_tokens:
        return
    line = usage_line(lang, totals, totals.cost or {})
    saving = cache_totals(lang, totals.saved or {})
    st.caption(t(lang, "chat_totals", usage=f"{line} · {saving}" if saving else line))

