"""Widget values that outlive the runs in which their widget is not drawn."""
from __future__ import annotations

from typing import Any

import streamlit as st


def keep(key: str, default: Any) -> Any:
    """Streamlit forgets a widget's value after a run that did not draw it (a hidden field, another
    provider's model list); writing the value back at the start of every run keeps it. Returns it."""
    st.session_state[key] = st.session_state.get(key, default)
    return st.session_state[key]
