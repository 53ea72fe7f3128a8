"""Who owns a browser's conversations: a token the server issues and signs, stored only as a hash.

The browser keeps `token.signature` in a cookie. A value the server did not sign is not an identity,
and the database holds sha256(token), so reading the database is not the power to act as anyone.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

SIGNATURE_BYTES = 18
# What the version before signing accepted (it issued 32 characters; a few clients chose their own).
_LEGACY_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")
# Tokens issued since signing are 86 characters, longer than any legacy token: stripped of its
# signature, a new token is never taken for a legacy one.
TOKEN_BYTES = 64


@dataclass(frozen=True)
class Identity:
    owner: str  # what the store scopes conversations by
    cookie: str | None = None  # a new cookie value for the browser, when it needs one


def _signature(token: str, secret: bytes) -> str:
    digest = hmac.new(secret, token.encode(), hashlib.sha256).digest()[:SIGNATURE_BYTES]
    return base64.urlsafe_b64encode(digest).decode("ascii")


def sign(token: str, secret: bytes) -> str:
    return f"{token}.{_signature(token, secret)}"


def verified_token(cookie: str, secret: bytes) -> str | None:
    """The token of a cookie value this server signed; None for anything else."""
    token, _, signature = cookie.rpartition(".")
    if not token or not hmac.compare_digest(signature.encode(), _signature(token, secret).encode()):
        return None
    return token


def anonymous_owner(token: str) -> str:
    return "anon:" + hashlib.sha256(token.encode()).hexdigest()


def user_owner(subject: str | None, email: str | None) -> str | None:
    """A logged-in user, by the identity provider's subject (or e-mail); None when it gave neither."""
    name = subject or email
    return f"user:{name}" if name else None


def identify(cookie: str, user: str | None, secret: bytes, has_conversations: Callable[[str], bool]) -> Identity:
    """The owner for this browser. A cookie from before signing is honoured only if its conversations
    exist (the server issued it then), and is replaced by a signed one; anything else starts afresh."""
    if user:
        return Identity(user)
    token = verified_token(cookie, secret)
    if token:
        return Identity(anonymous_owner(token))
    if _LEGACY_TOKEN.fullmatch(cookie) and has_conversations(anonymous_owner(cookie)):
        return Identity(anonymous_owner(cookie), sign(cookie, secret))
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return Identity(anonymous_owner(token), sign(token, secret))
