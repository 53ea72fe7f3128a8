"""Who owns the conversations of this browser: a logged-in user, or an anonymous id the server signed."""
from __future__ import annotations

import streamlit as st

from atri.addresses import served_over_https
from atri.owners import identify, user_owner
from atri.ui.config import get_store, load_settings
from atri.ui.session import session

OWNER_COOKIE = "atri_owner"
COOKIE_MAX_AGE_S = 400 * 24 * 3600
SECRET_NAME = "owner-cookie"


def _logged_in_user() -> str | None:
    try:
        if st.user.is_logged_in:
            return user_owner(st.user.get("sub"), st.user.get("email"))
    except Exception:  # no auth configured: st.user has nothing to say
        return None
    return None


def secret() -> bytes:
    """ATRI_SECRET_KEY when the host sets one; otherwise one made once and kept in the database, so that
    every replica and every restart agrees."""
    configured = load_settings().config.secret_key
    return configured.encode() if configured else get_store().app_secret(SECRET_NAME)


def current_owner() -> str:
    """Stable across reloads and tabs: the signed id lives in a first-party cookie the browser sends back."""
    if session.owner is None:
        store = get_store()
        cookie = st.context.cookies.get(OWNER_COOKIE)
        identity = identify(cookie if isinstance(cookie, str) else "", _logged_in_user(), secret(),
                            lambda owner: bool(store.list_conversations(owner, limit=1)))
        session.owner = identity.owner
        session.owner_cookie_to_set = identity.cookie
    return session.owner


def remember_owner() -> None:
    """Set the owner cookie in this browser, if this session had to issue one.

    Sent on every run of the session: a run cut short by a rerun may never mount the element.
    """
    current_owner()
    if session.owner_cookie_to_set:
        set_cookie(OWNER_COOKIE, session.owner_cookie_to_set, COOKIE_MAX_AGE_S)


def cookie_script(name: str, value: str, max_age_s: int, secure: bool) -> str:
    """The script that sets a first-party cookie: SameSite=Lax (not sent with other sites' requests), Secure
    on HTTPS (a Secure cookie set on plain http would be dropped). Not HttpOnly: a script cannot set that,
    and Streamlit's `streamlit run` offers no server-side way to set a cookie (see deploy/README.md)."""
    flags = f"path=/; max-age={max_age_s}; SameSite=Lax" + ("; Secure" if secure else "")
    return f"<script>document.cookie = '{name}={value}; {flags}';</script>"


def page_is_https() -> bool:
    """The browser's own URL, or X-Forwarded-Proto from a proxy the host trusts (TLS ends at nginx)."""
    headers = st.context.headers
    return served_over_https(st.context.url, st.context.ip_address,
                             headers.get_all("X-Forwarded-Proto") if headers else [],
                             load_settings().config.trusted_proxies)


def set_cookie(name: str, value: str, max_age_s: int) -> None:
    """Set a first-party cookie in this browser. `value` must be URL-safe (all of ours are: ids and hex)."""
    with st.container(key=f"cookie_{name}", height=1, border=False):
        # st.iframe runs HTML same-origin, so this sets the app's own cookie.
        st.iframe(cookie_script(name, value, max_age_s, page_is_https()), height=1)
    st.html(f"<style>.st-key-cookie_{name} {{display: none;}}</style>")
