"""What a failure says to the visitor: an error kind (atri.errors) in their language, with the provider's own
words shown as plain text, and a used-up quota with when it resets."""
from __future__ import annotations

import time
from datetime import UTC, datetime

from atri.i18n import t
from atri.safe_markdown import plain_text


def _when(lang: str, resets_at: float) -> str:
    seconds = max(0, int(resets_at - time.time()))
    if seconds < 120:
        return t(lang, "in_seconds", n=seconds)
    clock = datetime.fromtimestamp(resets_at, UTC).strftime("%H:%M UTC")
    return t(lang, "in_hours", h=seconds // 3600, m=seconds % 3600 // 60, clock=clock)


def quota_message(lang: str, what: str, limit: int, resets_at: float) -> str:
    return t(lang, f"error_quota_{what}", limit=f"{limit:,}", resets=_when(lang, resets_at))


def error_text(lang: str, kind: str, detail: str | None) -> str:
    key = f"error_{kind}"
    if kind.startswith("quota_") and detail:  # atri.quotas.QuotaExceeded: "LIMIT RESETS_AT"
        limit, _, resets_at = detail.partition(" ")
        try:
            return quota_message(lang, kind.removeprefix("quota_"), int(limit), float(resets_at))
        except (ValueError, KeyError):
            pass
    detail = plain_text(detail) if detail else None  # from the provider or an import: shown, never rendered
    try:
        return t(lang, key, detail=detail or "—")
    except KeyError:
        return t(lang, "error_unknown", detail=detail or plain_text(kind))
