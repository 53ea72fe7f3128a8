"""Who owns the conversations of this browser: a logged-in user, or an anonymous per-browser id."""
from __future__ import annotations

import secrets

import streamlit as st

OWNER_COOKIE = "atri_owner"
COOKIE_MAX_AGE_S = 400 * 24 * 3600


def _logged_in_user() -> str | None:
    try:
        if st.user.is_logged_in:
            return f"user:{st.user.get('sub') or st.user.get('email')}"
    except Exception:  # no auth configured: st.user has nothing to say
        return None
    return None


def current_owner() -> str:
    """Stable across reloads and tabs: the id lives in a first-party cookie the browser sends back."""
    if "owner" not in st.session_state:
        user = _logged_in_user()
        cookie = st.context.cookies.get(OWNER_COOKIE, "")
        if user:
            st.session_state.owner = user
        elif len(cookie) >= 20 and cookie.replace("-", "").replace("_", "").isalnum():
            st.session_state.owner = f"anon:{cookie}"
        else:
            token = secrets.token_urlsafe(24)
            st.session_state.owner = f"anon:{token}"
            st.session_state.owner_cookie_to_set = token
    return st.session_state.owner


def remember_owner() -> None:
    """Set the owner cookie in this browser, if this session had to make a new owner id.

    Sent on every run of the session: a run cut short by a rerun may never mount the element.
    """
    current_owner()
    token = st.session_state.get("owner_cookie_to_set")
    if not token:
        return
    with st.container(key="owner_cookie", height=1, border=False):
        # st.iframe runs HTML same-origin, so this sets the app's own cookie (the token is ours, URL-safe).
        st.iframe(f"<script>document.cookie = '{OWNER_COOKIE}={token}; path=/; "
                  f"max-age={COOKIE_MAX_AGE_S}; SameSite=Lax';</script>", height=1)
    st.html("<style>.st-key-owner_cookie {display: none;}</style>")
