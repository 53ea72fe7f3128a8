"""The data of a conversation: small dataclasses, with a dict form for storage and export."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    estimated: bool = False  # True when the server sent no usage and we counted

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Usage:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class ChatOptions:
    provider_id: str
    model: str
    temperature: float | None = None
    thinking: bool = False
    thinking_budget: int | None = None
    json_mode: bool = False
    system_prompt: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatOptions:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class AnswerFacts:
    """What we measured about one answer."""

    model: str
    finish_reason: str | None = None  # None: the stream ended without one (interrupted)
    ttft_s: float | None = None
    total_s: float | None = None
    thinking_s: float | None = None
    usage: Usage | None = None
    error_kind: str | None = None  # an atri.errors kind when the turn failed
    error_detail: str | None = None
    notes: list[str] = field(default_factory=list)  # i18n keys of adjustments we made
    request: dict[str, Any] | None = None  # the request as sent, without the key
    response: dict[str, Any] | None = None  # the response in the SDK's model_dump shape
    context: dict[str, Any] | None = None  # what the context strategy chose (atri.context.ContextPlan.explain)

    @property
    def interrupted(self) -> bool:
        return self.error_kind is not None or self.finish_reason is None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnswerFacts:
        values = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if values.get("usage") is not None:
            values["usage"] = Usage.from_dict(values["usage"])
        return cls(**values)


@dataclass
class Message:
    role: Role
    content: str
    images: list[str] = field(default_factory=list)  # http(s) or data:image URLs, user messages only
    thumbnails: list[str] = field(default_factory=list)  # per image: a small data: URL to show, "" for http(s)
    reasoning: str = ""  # shown, never sent back
    facts: AnswerFacts | None = None  # assistant messages only
    options: ChatOptions | None = None  # the options the answer was asked with
    id: int | None = None  # the store's row id, once saved

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        if data.get("role") not in ("system", "user", "assistant"):
            raise ValueError(f"unknown role {data.get('role')!r}")
        if not isinstance(data.get("content"), str):
            raise ValueError("content must be a string")
        images = data.get("images") or []
        if not isinstance(images, list) or not all(isinstance(url, str) for url in images):
            raise ValueError("images must be a list of URLs")
        facts = data.get("facts")
        options = data.get("options")
        return cls(
            role=data["role"],
            content=data["content"],
            images=list(images),
            reasoning=data.get("reasoning") or "",
            facts=AnswerFacts.from_dict(facts) if facts else None,
            options=ChatOptions.from_dict(options) if options else None,
            id=data.get("id"),
        )
