"""Widget values that outlive the runs in which their widget is not drawn."""
from __future__ import annotations

from typing import Any

import streamlit as st


def keep(key: str, default: Any) -> Any:
    """Streamlit forgets a widget's value after a run that did not draw it (a hidden field, another
    provider's model list); writing the value back at the start of every run keeps it. Returns it."""
    st.session_state[key] = st.session_state.get(key, default)
    return st.session_state[key]


# The chat page's settings widgets (sidebar and context panel). Other pages keep them too, so that a
# visit to another page does not reset the chat's provider, model, persona and so on.
CHAT_SETTINGS = ("lang", "provider", "temperature", "json_mode", "persona", "system_prompt", "image_urls",
                 "thinking_budget")
CHAT_SETTING_PREFIXES = ("model::", "custom_model::", "thinking::", "visitor_key::", "ctx_")


def keep_chat_settings() -> None:
    for key in list(st.session_state.keys()):
        if key in CHAT_SETTINGS or key.startswith(CHAT_SETTING_PREFIXES):
            st.session_state[key] = st.session_state[key]
