"""The data of a conversation: small dataclasses, with a dict form for storage and export.

Whatever comes from outside (an import, a stored row read back, a provider's usage) is turned into
these types by one validator (pydantic over the dataclasses): typed, bounded in size and depth, and
with image references that can only be web URLs or `data:image` URLs — never a path.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError, ValidationInfo, with_config
from typing_extensions import NotRequired, TypedDict  # pydantic needs these on Python < 3.12

from .i18n import STRINGS
from .images import BadImage, check_image_reference
from .safe_markdown import web_link_url
from .tool_images import MAX_STEP_IMAGES, MAX_THUMBNAIL_CHARS

Role = Literal["system", "user", "assistant"]
T = TypeVar("T")

MAX_TEXT_CHARS = 2_000_000  # a message or its reasoning (a 1 MB paste still fits)
MAX_IMAGES = 16
MAX_VIDEO_FRAMES = 16  # one clip's sampled frames (atri.video samples 8)
MAX_DEPTH = 32  # nesting of any stored JSON value (a request is about 7 deep)
MAX_COUNT = 10**10

Text = Annotated[str, Field(strict=True, max_length=MAX_TEXT_CHARS)]
MAX_NAME = 200
Name = Annotated[str, Field(strict=True, max_length=MAX_NAME)]
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_COUNT)]
Seconds = Annotated[float, Field(strict=True, ge=0, le=10**7, allow_inf_nan=False)]
Flag = Annotated[bool, Field(strict=True)]


def _known_note(key: str) -> str:
    if key not in STRINGS:
        raise ValueError(f"unknown note {key[:40]!r}")
    return key


def _image_reference(url: str, info: ValidationInfo) -> str:
    """Stored rows were checked whole when written: read back, their shape is enough (and cheap)."""
    try:
        return check_image_reference(url, decode=not (info.context or {}).get("stored"))
    except BadImage as refused:
        raise ValueError(f"not an http(s) or data:image URL within the limits ({refused.key})") from None


def _thumbnail(url: str, info: ValidationInfo) -> str:
    return url if url == "" else _image_reference(url, info)


Note = Annotated[str, Field(strict=True, max_length=80), AfterValidator(_known_note)]
ImageReference = Annotated[str, Field(strict=True), AfterValidator(_image_reference)]
Thumbnail = Annotated[str, Field(strict=True), AfterValidator(_thumbnail)]


@dataclass(frozen=True)
class Usage:
    prompt_tokens: Count = 0
    completion_tokens: Count = 0
    reasoning_tokens: Count = 0
    cached_tokens: Count = 0  # input read from the provider's cache (billed at a share of the input price)
    estimated: Flag = False  # True when the server sent no usage and we counted
    cache_written_tokens: Count = 0  # input written to an explicit cache (billed above the input price)
    cache_explicit: Flag = False  # the cache was the explicit one (cache_control): its hits cost less


@dataclass(frozen=True)
class ChatOptions:
    provider_id: Annotated[str, Field(strict=True, pattern=r"^[a-z0-9_-]{1,40}$")]
    model: Name
    temperature: Annotated[float, Field(strict=True, ge=0, le=2, allow_inf_nan=False)] | None = None
    thinking: Flag = False
    thinking_budget: Annotated[int, Field(strict=True, ge=1, le=1_000_000)] | None = None
    json_mode: Flag = False
    system_prompt: Annotated[str, Field(strict=True, max_length=100_000)] = ""
    tools: Annotated[list[Annotated[str, Field(strict=True, max_length=128)]], Field(max_length=200)] = \
        field(default_factory=list)  # the tools offered to the model (built-in and MCP names)
    web_search: Flag = False
    read_pages: Flag = False  # "search and read pages": a provider's search that reads the pages it found

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatOptions:
        return _adapter(cls).validate_python(data)


class Recollection(TypedDict):
    index: Count
    text: Text
    score: Annotated[float, Field(strict=True, allow_inf_nan=False)]


class DocumentExcerpt(TypedDict, total=False):
    document: Name
    page: Count | None
    label: Annotated[str, Field(strict=True, max_length=24)] | None  # the page's printed label
    text: Text
    score: Annotated[float, Field(strict=True, allow_inf_nan=False)]
    similarity: Annotated[float, Field(strict=True, allow_inf_nan=False)] | None


class ContextReport(TypedDict, total=False):
    """What the context strategy chose for one answer (atri.context.ContextPlan.explain)."""

    strategy: Literal["full", "last_n", "summary", "recall"]
    input_tokens: Count
    budget: Count
    tool_tokens: Count  # the tools' schemas, counted in input_tokens
    dropped: Annotated[list[Count], Field(max_length=100_000)]
    summary: Text | None
    summary_through: Count
    recalled: Annotated[list[Recollection], Field(max_length=100)]
    documents: Annotated[list[DocumentExcerpt], Field(max_length=10_000)]
    documents_whole: Flag
    notes: Annotated[list[Note], Field(max_length=50)]


class SentMessage(TypedDict):
    role: Name
    content: Text | list[dict[str, JsonValue]]


class MessageRefs(TypedDict):
    system: Text | list[dict[str, JsonValue]] | None  # parts when marked for the provider's explicit cache
    atri_message_ids: Annotated[list[Count], Field(max_length=100_000)]
    atri_text_only: NotRequired[Flag]
    atri_no_video: NotRequired[Flag]


@with_config(ConfigDict(extra="allow"))
class RequestRecord(TypedDict, total=False):
    """The request as sent (without the key); its history may be stored as references (atri.request)."""

    messages: list[SentMessage] | MessageRefs


class StepImageRecord(TypedDict):
    """An image a tool call returned, as its step keeps it: the thumbnail only (atri.tool_images)."""

    thumbnail: Annotated[str, Field(strict=True, min_length=1, max_length=MAX_THUMBNAIL_CHARS), AfterValidator(_thumbnail)]
    for_model: NotRequired[Flag]  # False: the server meant it for the user alone (never sent to a model)


class ToolStepRecord(TypedDict):
    """One tool call an answer made (atri.tools.ToolStep)."""

    id: Annotated[str, Field(strict=True, max_length=200)]
    name: Annotated[str, Field(strict=True, max_length=200)]
    arguments: Annotated[str, Field(strict=True, max_length=30_000)]
    result: Annotated[str, Field(strict=True, max_length=30_000)]
    error: Annotated[str, Field(strict=True, max_length=4000)] | None
    seconds: Seconds
    round: Annotated[int, Field(strict=True, ge=0, le=100)]
    declined: NotRequired[Literal["denied", "timed_out"]]  # not run: the visitor said no, or did not answer
    images: NotRequired[Annotated[list[StepImageRecord], Field(max_length=MAX_STEP_IMAGES)]]


# A source's URL that cannot be a link (not http(s), or with whitespace or control characters that would end
# its link and let what follows draw an image) is dropped, not refused: the rest of the conversation stays.
LinkUrl = Annotated[str, Field(strict=True, max_length=4000), AfterValidator(web_link_url)]


class SearchSource(TypedDict, total=False):
    """One web search result the provider grounded the answer on (DashScope's search_info.search_results)."""

    index: Annotated[int, Field(strict=True, ge=0, le=10_000)]
    title: Annotated[str, Field(strict=True, max_length=2000)]
    url: LinkUrl
    site_name: Annotated[str, Field(strict=True, max_length=500)]
    icon: LinkUrl


@dataclass
class AnswerFacts:
    """What we measured about one answer."""

    model: Name
    finish_reason: Annotated[str, Field(strict=True, max_length=40)] | None = None  # None: interrupted
    ttft_s: Seconds | None = None
    total_s: Seconds | None = None
    thinking_s: Seconds | None = None
    usage: Usage | None = None
    error_kind: Annotated[str, Field(strict=True, pattern=r"^[a-z_]{1,40}$")] | None = None  # an atri.errors kind
    error_detail: Annotated[str, Field(strict=True, max_length=4000)] | None = None
    notes: Annotated[list[Note], Field(max_length=50)] = field(default_factory=list)  # i18n keys of adjustments
    request: RequestRecord | None = None  # the request as sent, without the key
    response_id: Annotated[str, Field(strict=True, max_length=200)] | None = None  # the provider's id
    context: ContextReport | None = None  # what the context strategy chose
    tool_steps: Annotated[list[ToolStepRecord], Field(max_length=200)] | None = None  # tool calls, in order
    sources: Annotated[list[SearchSource], Field(max_length=200)] | None = None  # web search results
    web_searches: Count | None = None  # searches the provider ran and bills (None: it did not say)
    # What it cost at the prices of the day it was written: set by the store, read back by every view (the
    # chat, its totals, Usage, exports), so that a later price change rewrites none of them.
    cost: Annotated[float, Field(strict=True, ge=0, le=10**9, allow_inf_nan=False)] | None = None
    currency: Annotated[str, Field(strict=True, max_length=8)] | None = None
    # What the provider's cache took off that cost (negative on the turn that wrote an explicit cache).
    saved: Annotated[float, Field(strict=True, ge=-10**9, le=10**9, allow_inf_nan=False)] | None = None

    @property
    def interrupted(self) -> bool:
        return self.error_kind is not None or self.finish_reason is None


@dataclass
class Message:
    role: Role
    content: Text
    images: Annotated[list[ImageReference], Field(max_length=MAX_IMAGES)] = field(default_factory=list)
    thumbnails: Annotated[list[Thumbnail], Field(max_length=MAX_IMAGES)] = field(default_factory=list)
    video: Annotated[list[ImageReference], Field(max_length=MAX_VIDEO_FRAMES)] = field(default_factory=list)  # frames
    reasoning: Text = ""  # shown, never sent back
    facts: AnswerFacts | None = None  # assistant messages only
    options: ChatOptions | None = None  # the options the answer was asked with
    id: Annotated[int, Field(strict=True)] | None = None  # the store's row id, once saved

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, stored: bool = False) -> Message:
        """Raises InvalidData naming the field and the reason. `stored`: read back from our own database."""
        return validated(cls, data, stored)


class InvalidData(ValueError):
    """Data from outside that does not fit; the message names the first bad field and why."""


@cache
def _adapter(kind: type) -> TypeAdapter:
    return TypeAdapter(kind)


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply lists and dicts nest in value, counting no further than limit + 1 (no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= limit:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def validated(kind: type[T], data: Any, stored: bool = False) -> T:
    if depth(data) > MAX_DEPTH:
        raise InvalidData(f"nested more than {MAX_DEPTH} levels deep")
    try:
        return _adapter(kind).validate_python(data, context={"stored": stored})
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "value"
        raise InvalidData(f"{where}: {first['msg'].removeprefix('Value error, ')}") from None


def usage_from_provider(raw: dict[str, Any]) -> Usage:
    """A provider's usage object (numbers may be missing or null); raises InvalidData when malformed."""
    completion_details = raw.get("completion_tokens_details") or {}
    prompt_details = raw.get("prompt_tokens_details") or {}
    if not isinstance(completion_details, dict) or not isinstance(prompt_details, dict):
        raise InvalidData("usage details are not objects")
    return validated(Usage, {
        "prompt_tokens": raw.get("prompt_tokens") or 0,
        "completion_tokens": raw.get("completion_tokens") or 0,
        "reasoning_tokens": completion_details.get("reasoning_tokens") or 0,
        "cached_tokens": prompt_details.get("cached_tokens") or 0,
        "cache_written_tokens": prompt_details.get("cache_creation_input_tokens") or 0,
        "cache_explicit": prompt_details.get("cache_type") == "ephemeral"
                          or bool(prompt_details.get("cache_creation_input_tokens")),
    })
