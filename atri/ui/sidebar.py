"""The sidebar: provider, model and answer options."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import streamlit as st

from atri.client import list_models
from atri.context import ContextSettings
from atri.conversation import SendGuard
from atri.i18n import t
from atri.messages import ChatOptions
from atri.personas import DEFAULT_PERSONA, PERSONAS, persona_of, persona_prompt
from atri.providers import ModelInfo, Provider, Thinking
from atri.quotas import Key
from atri.settings import Connection, Settings
from atri.store import Snapshot
from atri.tokenizer import counter_for
from atri.tokens import TokenCounter
from atri.tools import Toolbox
from atri.ui.access import metered, quota_status
from atri.ui.config import local_connection
from atri.ui.context_panel import context_controls, meter
from atri.ui.session import (
    JSON_MODE,
    PERSONA,
    PROVIDER,
    SEND_AT_ONCE,
    SYSTEM_PROMPT,
    TEMPERATURE,
    THINKING_BUDGET,
    custom_model_key,
    model_key,
    session,
    thinking_key,
    visitor_key,
)
from atri.ui.toolbar import SHOW_DETAILS
from atri.ui.tools_panel import restore_tools, tools_controls

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator

DEFAULT_TEMPERATURE = 0.7
DEFAULT_BUDGET = 1000


@dataclass
class ChatSetup:
    provider: Provider
    options: ChatOptions
    connection: Connection | None
    model: ModelInfo
    count: TokenCounter
    context: ContextSettings
    toolbox: Toolbox | None = None  # the tools this answer may call


def _apply_persona(lang: str) -> None:
    st.session_state[SYSTEM_PROMPT] = persona_prompt(st.session_state[PERSONA], lang)


def _persona_in_language(lang: str) -> None:
    """A new visitor starts with the neutral assistant in their language; a persona's unedited prompt follows
    the language picker (an edited prompt is the visitor's own and stays as written)."""
    state = st.session_state
    if PERSONA not in state:
        state[PERSONA] = DEFAULT_PERSONA
        state[SYSTEM_PROMPT] = persona_prompt(DEFAULT_PERSONA, lang)
    elif persona_of(state.get(SYSTEM_PROMPT, "")) == state[PERSONA]:
        state[SYSTEM_PROMPT] = persona_prompt(state[PERSONA], lang)


def _model_choices(connection: Connection | None, defaults: list[str]) -> list[str]:
    """The catalogue's models, then whatever the provider's /models lists (fetched once per session)."""
    if connection is None or connection.provider.embedded:
        return defaults
    listed = session.listed_models
    cache_key = f"{connection.provider.id}::{connection.base_url}"
    if cache_key not in listed:
        listed[cache_key] = list_models(connection)
    return defaults + [m for m in listed[cache_key] if m not in defaults]


def _thinking_controls(lang: str, model: ModelInfo) -> tuple[bool, int | None]:
    st.session_state.setdefault(THINKING_BUDGET, DEFAULT_BUDGET)
    if model.thinking == Thinking.HYBRID:
        st.session_state.setdefault(thinking_key(model.id), model.thinking_default)
        thinking = st.toggle(t(lang, "thinking"), key=thinking_key(model.id), persist_state="session")
        budget = None
        if thinking:
            ceiling = model.max_thinking_budget or 1_000_000
            st.session_state[THINKING_BUDGET] = min(st.session_state[THINKING_BUDGET], ceiling)
            budget = int(st.number_input(t(lang, "thinking_budget"), min_value=1, max_value=ceiling, step=100,
                                         key=THINKING_BUDGET, persist_state="session"))
        return thinking, budget
    hint = {Thinking.ALWAYS: "thinking_always", Thinking.HIDDEN: "thinking_hidden"}.get(model.thinking, "thinking_unavailable")
    st.toggle(t(lang, "thinking"), value=model.thinking != Thinking.NONE, disabled=True, help=t(lang, hint),
              key=f"thinking_fixed::{model.id}")
    st.caption(t(lang, hint))
    return model.thinking == Thinking.ALWAYS, None


def _provider_controls(settings: Settings, lang: str, bar: DeltaGenerator) -> tuple[Provider, Connection | None,
                                                                              TokenCounter | None]:
    """The provider picker (in the chat's model bar), and in the sidebar a key field when neither the
    configuration nor the visitor has given one."""
    providers = settings.offered_providers()
    if st.session_state.get(PROVIDER) not in providers:
        st.session_state[PROVIDER] = settings.default_provider_id()
    provider_id = bar.selectbox(t(lang, "provider"), list(providers), key=PROVIDER, persist_state="session",
                                format_func=lambda pid: providers[pid].label_for(lang), label_visibility="collapsed")
    provider = providers[provider_id]
    if provider.embedded:
        with st.sidebar:
            connection, local_count = local_connection(settings, lang)
        return (connection.provider if connection else provider), metered(connection, Key.EMBEDDED), local_count
    typed_key = None
    with st.sidebar:
        if provider.key_optional:
            pass  # a server of the host's own: no key to bring
        elif settings.key_for(provider):  # the host pays unless the visitor brings a key
            typed_key = st.text_input(t(lang, "api_key_own"), type="password", key=visitor_key(provider_id),
                                      persist_state="session", help=t(lang, "api_key_own_help"))
        else:
            typed_key = st.text_input(t(lang, "api_key"), type="password", key=visitor_key(provider_id),
                                      persist_state="session")
        connection = settings.connection(provider, typed_key.strip() or None if typed_key else None)
        if connection is None:
            st.warning(t(lang, "api_key_missing", provider=provider.label_for(lang), env=provider.key_env[0]))
    return provider, metered(connection, Key.OWN if typed_key else Key.HOST), None


def restore_options(view: Snapshot, settings: Settings) -> None:
    """Reopening a conversation brings back the provider, model, persona and options of its last answer."""
    if view.cid is None or session.options_loaded_for == view.cid:
        return
    session.options_loaded_for = view.cid
    answers = [m for m in view.messages if m.role == "assistant" and m.options]
    if not answers:
        return
    options = answers[-1].options
    providers = settings.offered_providers()
    if options.provider_id not in providers:  # e.g. a server the host no longer names
        return
    provider = providers[options.provider_id]
    state = st.session_state
    state[PROVIDER] = provider.id
    if any(m.id == options.model for m in provider.models) or provider.embedded:
        state[model_key(provider.id)] = options.model
        state[custom_model_key(provider.id)] = ""
    else:
        state[custom_model_key(provider.id)] = options.model
    if options.temperature is not None:
        state[TEMPERATURE] = options.temperature
    state[JSON_MODE] = options.json_mode
    state[thinking_key(options.model)] = options.thinking
    if options.thinking_budget:
        state[THINKING_BUDGET] = options.thinking_budget
    state[SYSTEM_PROMPT] = options.system_prompt
    restore_tools(options)
    state[PERSONA] = persona_of(options.system_prompt) or state.get(PERSONA, DEFAULT_PERSONA)


def render_sidebar(settings: Settings, lang: str, view: Snapshot) -> ChatSetup:
    """The chat's choices: the provider and model at the top of the chat, beside a settings panel (a popover:
    custom model id, temperature, thinking, JSON, persona, system prompt, tools, context and its meter, details);
    the sidebar keeps the conversations and a key field."""
    restore_options(view, settings)
    bar = st.container(horizontal=True, vertical_alignment="center", gap="small", key="model_bar")
    provider, connection, local_count = _provider_controls(settings, lang, bar)
    provider_id = provider.id

    default_model = settings.default_model_for(provider)
    known = [m.id for m in provider.models] or [default_model]
    if default_model not in known:
        known.insert(0, default_model)
    choices = _model_choices(connection, known)
    if st.session_state.get(model_key(provider_id)) not in choices:
        st.session_state[model_key(provider_id)] = default_model
    picked = bar.selectbox(t(lang, "model"), choices, key=model_key(provider_id), persist_state="session",
                           label_visibility="collapsed")
    session.model_choices = (provider_id, choices)
    panel = bar.popover(t(lang, "settings"), icon=":material/tune:", key="settings_panel")
    with panel:
        typed = st.text_input(t(lang, "custom_model"), key=custom_model_key(provider_id), persist_state="session",
                              help=t(lang, "custom_model_help"))
        model = provider.model(typed.strip() or picked)
        if not model.known and not provider.embedded:
            st.caption(f":material/help: {t(lang, 'model_guessed')}")
        count = local_count or counter_for(model.id, settings.config.cache_dir)

        st.session_state.setdefault(TEMPERATURE, DEFAULT_TEMPERATURE)
        temperature = st.slider(t(lang, "temperature"), 0.0, 2.0, step=0.05, key=TEMPERATURE, persist_state="session")
        thinking, budget = _thinking_controls(lang, model)
        json_mode = st.toggle(t(lang, "json_mode"), key=JSON_MODE, persist_state="session")
        if json_mode and not model.json_mode:
            st.caption(t(lang, "json_unsupported_hint"))

        _persona_in_language(lang)
        st.selectbox(t(lang, "persona"), list(PERSONAS), key=PERSONA, on_change=_apply_persona, args=(lang,),
                     persist_state="session",
                     format_func=lambda p: PERSONAS[p][0 if lang == "zh" else 1])
        system_prompt = st.text_area(t(lang, "system_prompt"), key=SYSTEM_PROMPT, height=100, persist_state="session")
        tools = tools_controls(lang, settings, model)
        context = context_controls(lang, view)
        meter(lang, view, context, system_prompt, model, count, tools.toolbox)
        if connection is not None and connection.provider.transcription_model:  # the chat box has a microphone
            st.toggle(t(lang, "send_voice_at_once"), key=SEND_AT_ONCE, help=t(lang, "send_voice_at_once_help"),
                      persist_state="session")
        st.toggle(t(lang, "show_details_always"), key=SHOW_DETAILS, help=t(lang, "show_details_always_help"),
                  persist_state="session")
    with st.sidebar:
        used_up = quota_status(lang, connection)
    seeing, watching = provider.seeing_model(), provider.seeing_model(needs_video=True)
    session.send_guard = SendGuard(model.id, model.context_window, count, used_up,
                                   sees_images=model.vision or not model.known, seeing_model_id=seeing.id if seeing else None,
                                   reads_video=model.video or not model.known,
                                   video_model_id=watching.id if watching else None)

    options = ChatOptions(provider_id=provider_id, model=model.id, temperature=temperature, thinking=thinking,
                          thinking_budget=budget, json_mode=json_mode, system_prompt=system_prompt,
                          tools=tools.names, web_search=tools.web_search, read_pages=tools.read_pages)
    return ChatSetup(provider, options, connection, model, count, context, tools.toolbox)
