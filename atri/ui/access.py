"""A shared demo's front door and meter: the access gate, who pays for a request, what is left of the quotas."""
from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import replace

import streamlit as st

from atri.addresses import client_address, quota_address
from atri.gate import Outcome
from atri.i18n import t
from atri.providers import Provider
from atri.quotas import Key, Meter, Payer, Quotas, Standing
from atri.settings import Connection, Settings
from atri.tokens import TokenCounter
from atri.ui.config import load_settings, local_connection, services
from atri.ui.identity import current_owner, secret, set_cookie
from atri.ui.session import ACCESS_PASSWORD, session

ACCESS_COOKIE = "atri_access"
ACCESS_COOKIE_MAX_AGE_S = 30 * 24 * 3600


def _login_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets.toml at all
        return False


def _access_token(password: str) -> str:
    """What the browser keeps instead of the password: changes when the password (or the secret) does."""
    digest = hashlib.sha256(password.encode()).digest()
    return hmac.new(secret(), b"access:" + digest, hashlib.sha256).hexdigest()


def has_access() -> bool:
    """Whether this visitor may go on (draws nothing: the navigation comes first). Streamlit login, where
    the host set it up, is the gate; otherwise ATRI_ACCESS_PASSWORD, remembered for the browser by a
    signed cookie. Open with neither."""
    if _login_configured():
        return bool(st.user.is_logged_in)
    password = load_settings().config.access_password
    if not password:
        return True
    token = _access_token(password)
    cookie = st.context.cookies.get(ACCESS_COOKIE)
    return (isinstance(cookie, str) and hmac.compare_digest(cookie, token)) or session.access_granted == token


def remember_access() -> None:
    """Keep the password this session entered for the browser: the cookie holds a token made from it."""
    if session.access_granted:
        set_cookie(ACCESS_COOKIE, session.access_granted, ACCESS_COOKIE_MAX_AGE_S)


def visitor_address() -> str | None:
    """What this visitor counts as on the network: their address behind the host's proxies (an IPv6 one's
    /64); None for a browser on this machine talking to Streamlit directly."""
    headers = st.context.headers
    forwarded = headers.get_all("X-Forwarded-For") if headers else []
    return quota_address(client_address(st.context.ip_address, forwarded, load_settings().config.trusted_proxies))


def access_form(lang: str) -> None:
    """The login button, or the password form. Guesses are counted per address and overall (atri.gate):
    past the limit a guess is refused unchecked, with the time to try again."""
    st.title("Atri")
    if _login_configured():
        st.write(t(lang, "login_needed"))
        st.button(t(lang, "login"), on_click=st.login, type="primary")
        return
    settings = load_settings()
    password = settings.config.access_password
    st.caption(t(lang, "access_why"))
    with st.form("access"):
        typed = st.text_input(t(lang, "access_password"), type="password", key=ACCESS_PASSWORD)
        entered = st.form_submit_button(t(lang, "access_enter"), type="primary")
    if not entered:
        return
    verdict = services().password_gate.guess(typed, password, visitor_address())
    if verdict.outcome is Outcome.RIGHT:
        session.access_granted = _access_token(password)
        st.rerun()
    seconds = max(1, round((verdict.retry_at or time.time()) - time.time()))
    if verdict.outcome is Outcome.WAIT:
        st.error(t(lang, f"access_too_many_{verdict.by}", seconds=seconds))
    elif verdict.left:
        st.error(t(lang, "access_wrong_left", left=verdict.left))
    else:
        st.error(t(lang, "access_wrong_last", seconds=seconds))


def quotas() -> Quotas | None:
    """The process's quotas on the host's database; None when the host set no limit."""
    return services().quotas(load_settings().config.quotas)


def payer(key: Key) -> Payer:
    return Payer(current_owner(), visitor_address(), key)


def metered(connection: Connection | None, key: Key) -> Connection | None:
    """The connection with this visitor's quotas on it: every request it sends is counted."""
    limits = quotas()
    if connection is None or limits is None:
        return connection
    return replace(connection, meter=Meter(limits, payer(key)))


def host_connection(settings: Settings, provider: Provider, lang: str) -> tuple[Connection | None, TokenCounter | None]:
    """A metered connection on the host's key or the embedded model (with its token counter), for the
    pages that do not take a visitor's key (Compare, Batch, Extract)."""
    if provider.embedded:
        connection, count = local_connection(settings, lang)
        return metered(connection, Key.EMBEDDED), count
    return metered(settings.connection(provider), Key.HOST), None


def standing_line(lang: str, standings: list[Standing]) -> str:
    """"12 of 20 requests this minute · 31,000 of 50,000 tokens today"."""
    return " · ".join(t(lang, f"quota_left_{s.what}", used=s.used, limit=s.limit) for s in standings)


def quota_status(lang: str, connection: Connection | None) -> Standing | None:
    """The sidebar's line of what is left; returns the limit already used up, if one is."""
    meter = connection.meter if connection is not None else None
    if not isinstance(meter, Meter):  # unmetered (or metered by something other than the quotas)
        return None
    standings = meter.quotas.standing(meter.payer)
    if not standings:
        return None
    st.caption(f":material/data_usage: {standing_line(lang, standings)}")
    return next((s for s in standings if s.left == 0), None)
