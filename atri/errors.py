"""What can go wrong in a turn, as kinds the UI can explain."""
from __future__ import annotations


class ChatError(Exception):
    """A failed or broken turn. `kind` names an i18n message; `detail` is the provider's own words."""

    def __init__(self, kind: str, detail: str = "", retry_after_s: float | None = None) -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail
        self.retry_after_s = retry_after_s  # how long the provider (or a host quota) asked to wait, when it said


def classify_status(status: int, text: str) -> str:
    """Map an HTTP error (status and the provider's code/message) to a kind."""
    lowered = text.lower()
    if status == 401:
        return "auth"
    if status == 403:
        return "forbidden"
    if status == 404:
        return "not_found"
    if status == 429:
        if "allocationquota" in lowered or "allocated quota" in lowered or "insufficient_quota" in lowered:
            return "quota"
        if "too quickly" in lowered:
            return "burst"
        return "rate_limit"
    if status == 400 or status == 422:
        if "data_inspection_failed" in lowered or "datainspectionfailed" in lowered or "inappropriate content" in lowered:
            return "moderation"
        if "range of input length" in lowered or "context length" in lowered or "maximum context" in lowered:
            return "context_too_long"
        return "bad_request"
    if status >= 500:
        return "server"
    return "bad_request"
