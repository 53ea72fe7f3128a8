"""The compare page: one question, several models answering at once."""
from __future__ import annotations

import asyncio

import streamlit as st

from atri.calls import Target
from atri.compare import compare
from atri.i18n import t
from atri.messages import ChatOptions, Message
from atri.personas import DEFAULT_PERSONA, PERSONAS, persona_prompt
from atri.providers import catalogue
from atri.safe_markdown import defuse_images
from atri.settings import Settings
from atri.tokenizer import counter_for
from atri.turn import Turn
from atri.ui.access import host_connection
from atri.ui.error_text import error_text
from atri.ui.redraw import Throttle
from atri.ui.render import facts_line
from atri.ui.session import COMPARE_PERSONA, TEMPERATURE
from atri.ui.sidebar import DEFAULT_TEMPERATURE

MAX_TARGETS = 4


def _choices(settings: Settings) -> list[str]:
    """'provider · model' for every model of every provider that can be reached without asking for a key."""
    choices = []
    for provider in settings.offered_providers().values():
        if provider.embedded or (settings.is_configured(provider) and settings.connection(provider)):
            models = [m.id for m in provider.models] or [settings.default_model_for(provider)]
            choices += [f"{provider.id} · {model}" for model in models]
    return choices


def _target(settings: Settings, choice: str, lang: str) -> Target | None:
    provider_id, model_id = choice.split(" · ", 1)
    provider = catalogue()[provider_id]
    connection, count = host_connection(settings, provider, lang)
    if provider.embedded:
        return Target(connection, connection.provider.model(model_id), count=count) if connection else None
    return Target(connection, provider.model(model_id), count=counter_for(model_id, settings.config.cache_dir)) if connection else None


def compare_page(settings: Settings, lang: str) -> None:
    st.title(t(lang, "compare_title"))
    st.caption(t(lang, "compare_intro"))
    choices = _choices(settings)
    picked = st.multiselect(t(lang, "compare_models"), choices, default=choices[:2], max_selections=MAX_TARGETS,
                            key="cmp_models")
    if len(choices) < 2:
        st.info(t(lang, "tools_setup_hint"))
    question = st.text_area(t(lang, "compare_question"), key="cmp_question", height=100)
    thinking = st.toggle(t(lang, "thinking"), key="cmp_thinking")
    persona = st.selectbox(t(lang, "persona"), list(PERSONAS), index=list(PERSONAS).index(DEFAULT_PERSONA),
                           key=COMPARE_PERSONA, format_func=lambda p: PERSONAS[p][0 if lang == "zh" else 1])
    if not st.button(t(lang, "compare_ask"), type="primary", disabled=not (picked and question.strip()), key="cmp_ask"):
        return
    targets = [target for target in (_target(settings, choice, lang) for choice in picked) if target]
    options = ChatOptions("", "", temperature=st.session_state.get(TEMPERATURE, DEFAULT_TEMPERATURE), thinking=thinking,
                          system_prompt=persona_prompt(persona, lang))  # its own persona, not the chat's
    columns = st.columns(len(targets))
    slots = []
    for column, target in zip(columns, targets):
        column.markdown(f"**{target.label}**")
        slots.append((column.empty(), column.empty()))
    throttles = [Throttle() for _ in targets]

    def draw(index: int, turn: Turn) -> None:
        if not throttles[index].due(final=turn.ended_at is not None):
            return
        answer, facts = slots[index]
        answer.markdown(defuse_images(turn.content) or (f"*{t(lang, 'thinking_live')}*" if turn.reasoning else "…"))
        if turn.ended_at is not None:
            message = turn.to_message(options)
            with facts.container():
                if turn.error:
                    st.error(error_text(lang, turn.error.kind, turn.error.detail))
                st.caption(facts_line(lang, message.facts, bool(turn.reasoning)))
                if turn.reasoning:
                    with st.expander(t(lang, "thought_for", seconds=turn.thinking_seconds() or 0.0)):
                        st.markdown(defuse_images(turn.reasoning))

    asyncio.run(compare(targets, Message("user", question), options, draw))
