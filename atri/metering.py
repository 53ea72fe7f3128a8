"""What the call path (atri.calls) needs of a payer's quotas, as protocols.

A Connection carries its meter, and the call path admits and charges every request on it; atri.quotas
implements these over the database. Typed here, below both, so that settings and the call path do not
import the quotas, and through them the store."""
from __future__ import annotations

from typing import Any, Protocol

from .providers import ModelInfo
from .tokens import TokenCounter


class Admitted(Protocol):
    """A request let through: what it holds, and how to send it and charge it."""

    input_tokens: int  # its input, as estimated at admission
    lowered: bool  # what was left made its output reserve smaller than the request wanted

    def charge(self, used_tokens: int) -> None:
        """Hold what it really used instead of the estimate (each call replaces the last)."""

    def limit(self, kwargs: dict[str, Any], model: ModelInfo) -> dict[str, Any]:
        """The request asking for no more output than was reserved for it."""


class RequestMeter(Protocol):
    def admit_request(self, kwargs: dict[str, Any], model: ModelInfo, count: TokenCounter, *,
                      host_choice: bool = False) -> Admitted | None:
        """Admit a request about to be sent (raises QuotaExceeded, a ChatError); None: it needs no admission."""
