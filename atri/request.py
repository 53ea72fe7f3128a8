"""History + options -> keyword arguments for chat.completions.create. Pure."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .messages import ChatOptions, Message
from .providers import PROVIDER_CHOOSES, READ_PAGES, ModelInfo, Provider, Thinking
from .tokens import TokenCounter, message_text, schema_tokens

CITATION_FORMAT = "[ref_<number>]"  # DashScope's other format, "[<number>]", reads like any bracketed number
JSON_INSTRUCTION = "Reply with one valid JSON object only (JSON, no Markdown fences)."
EXPLICIT_CACHE_MIN_TOKENS = 1024  # DashScope creates no explicit cache block shorter than this
CACHE_MARK = {"type": "ephemeral"}  # DashScope's explicit cache marker (Model Studio, "Context cache")


@dataclass
class RequestPlan:
    kwargs: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # i18n keys: what we changed and why


def user_content(message: Message, with_images: bool = True, with_video: bool = True) -> str | list[dict[str, Any]]:
    """Plain text, or the seed's list of image_url parts (then a clip as Qwen-VL's list of frames) followed
    by the text part."""
    images = message.images if with_images else []
    video = message.video if with_images and with_video else []
    if not images and not video:
        return message.content
    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": url}} for url in images]
    if video:
        parts.append(video_part(video))
    parts.append({"type": "text", "text": message.content})
    return parts


def video_part(video: list[str]) -> dict[str, Any]:
    """A clip as Qwen-VL takes it: a link it fetches itself (`video_url`), or the frames sampled here (`video`)."""
    if len(video) == 1 and not video[0].startswith("data:"):
        return {"type": "video_url", "video_url": {"url": video[0]}}
    return {"type": "video", "video": list(video)}


def history_messages(history: list[Message], with_images: bool = True, with_video: bool = True,
                     ) -> list[dict[str, Any]]:
    """Only content goes back to the model: reasoning is never resent, empty failed answers are skipped.
    A model that cannot see gets the text alone (a template error otherwise breaks every later turn); one
    that sees pictures but not video gets the pictures."""
    sent: list[dict[str, Any]] = []
    for message in history:
        if message.role == "user":
            sent.append({"role": "user", "content": user_content(message, with_images, with_video)})
        elif message.role == "assistant" and message.content:
            sent.append({"role": "assistant", "content": message.content})
    return sent


def sends_parts(messages: list[dict[str, Any]]) -> bool:
    """Whether any message of the thread is a list of parts (images, audio, video) rather than plain text (a
    system message marked for the cache is text in parts, and does not count)."""
    return any(isinstance(message.get("content"), list) for message in messages if message.get("role") != "system")


def mentions_json(messages: list[dict[str, Any]]) -> bool:
    return any("json" in message_text(m["content"]).lower() for m in messages)


@dataclass(frozen=True)
class Call:
    """What one call to a model asks for, whatever it is for: an answer, a title, a summary…"""

    messages: list[dict[str, Any]]
    thinking: bool = False
    thinking_budget: int | None = None
    json_mode: bool = False
    temperature: float | None = None
    max_tokens: int | None = None


def build_call(call: Call, model: ModelInfo, provider: Provider, notes: list[str] | None = None) -> dict[str, Any]:
    """Keyword arguments for chat.completions.create: the one place where what differs between
    providers and models (thinking switches, JSON mode, output caps) turns into a request."""
    notes = [] if notes is None else notes
    kwargs: dict[str, Any] = {"model": model.id, "messages": call.messages, "stream": True,
                              "stream_options": {"include_usage": True}}
    if call.temperature is not None:
        kwargs["temperature"] = call.temperature
    max_tokens = call.max_tokens
    if provider.cap_output:
        max_tokens = min(max_tokens or model.max_output, model.max_output)
    if max_tokens:
        kwargs["max_tokens"] = max_tokens
    json_mode = call.json_mode and model.json_mode
    if json_mode:
        kwargs["response_format"] = {"type": "json_object"}
    extra_body = _thinking_body(call, model, json_mode, notes)
    if extra_body:
        kwargs["extra_body"] = extra_body
    return kwargs


def build_request(history: list[Message], options: ChatOptions, model: ModelInfo,
                  provider: Provider, tools: list[dict[str, Any]] | None = None, stable_prefix: str = "",
                  count: TokenCounter | None = None) -> RequestPlan:
    """An answer in a chat: the history (text only for a model that can't see), the persona, JSON mode,
    the tools it may call (`tools`: their schemas) and the provider's web search. `stable_prefix`: the start of
    the system prompt that stays the same turn after turn (the persona and whole documents); with `count`, it
    is marked for the model's explicit cache when that pays."""
    notes: list[str] = []
    sent = history_messages(history, with_images=model.vision, with_video=model.video)
    system_prompt = options.system_prompt.strip()

    json_mode = options.json_mode
    if json_mode and not model.json_mode:
        notes.append("note_json_unsupported")
    if json_mode and not mentions_json(sent + [{"content": system_prompt}]):
        system_prompt = f"{system_prompt}\n\n{JSON_INSTRUCTION}".strip()
        notes.append("note_json_word_added")
    if system_prompt:
        offered, stable = (tools if tools and model.tools else None), stable_prefix.strip()
        worth_caching = model.explicit_cache and count is not None and bool(stable) \
            and system_prompt.startswith(stable) and cacheable(stable, offered, count)
        sent.insert(0, {"role": "system", "content": cache_marked(system_prompt, stable) if worth_caching else system_prompt})

    images = [url for m in history if m.role == "user" for url in m.images]
    if images and not model.vision:
        notes.append("note_model_no_vision")
    if model.vision and not model.video and any(m.video for m in history if m.role == "user"):
        notes.append("note_model_no_video")
    if model.vision and provider.images_as_data_urls and any(not url.startswith("data:") for url in images):
        notes.append("note_images_need_data")

    call = Call(sent, thinking=options.thinking, thinking_budget=options.thinking_budget, json_mode=json_mode,
                temperature=options.temperature)
    kwargs = build_call(call, model, provider, notes)
    kwargs["model"] = options.model
    if tools and model.tools:
        kwargs["tools"] = tools
        kwargs["parallel_tool_calls"] = True  # otherwise DashScope returns only the first of several calls
        if provider.tool_choice_auto:
            kwargs["tool_choice"] = "auto"
    elif tools:
        notes.append("note_model_no_tools")
    if options.web_search and model.web_search:
        thinking = bool(kwargs.get("extra_body", {}).get("enable_thinking")) or model.thinking == Thinking.ALWAYS
        strategy = model.search_strategy(options.read_pages, thinking)
        if options.read_pages and strategy != READ_PAGES and model.reads_pages:
            notes.append("note_read_pages_needs_thinking")
        kwargs.setdefault("extra_body", {}).update(search_body(strategy))
        if provider.native_search and sends_parts(kwargs["messages"]):
            notes.append("note_search_sources_text_only")
    elif options.web_search and not any(tool["function"]["name"] == "web_search" for tool in kwargs.get("tools", [])):
        notes.append("note_web_search_unavailable")
    return RequestPlan(kwargs, notes)


def cacheable(stable_prefix: str, tools: list[dict[str, Any]] | None, count: TokenCounter) -> bool:
    """Whether the stable prefix is long enough for DashScope to cache. The tool schemas count too: the model
    reads them with the system prompt; marking a prefix that turns out too short only goes uncached."""
    return count(stable_prefix) + schema_tokens(tools, count) >= EXPLICIT_CACHE_MIN_TOKENS


def cache_marked(system_prompt: str, stable_prefix: str) -> list[dict[str, Any]]:
    """The system message as DashScope's documented shape for its explicit cache: text parts, the marker on the
    last part of the stable prefix; what changes from turn to turn (a summary, excerpts, recalled turns, the
    JSON instruction) follows it unmarked, so the cached block stays byte for byte the same."""
    parts: list[dict[str, Any]] = [{"type": "text", "text": stable_prefix, "cache_control": dict(CACHE_MARK)}]
    rest = system_prompt[len(stable_prefix):]
    if rest:
        parts.append({"type": "text", "text": rest})
    return parts


def search_body(strategy: str) -> dict[str, Any]:
    """DashScope's web search switches (Model Studio "Web search", 2026): the visitor switched search on, so it
    is forced (English questions are often answered unsearched otherwise); sources and citation marks asked for,
    as `[ref_1]`. Only DashScope's own protocol returns them (atri.dashscope_native sends these there); over
    Chat Completions the answer is grounded without them. PROVIDER_CHOOSES names no strategy."""
    options: dict[str, Any] = {"forced_search": True, "enable_source": True, "enable_citation": True,
                               "citation_format": CITATION_FORMAT}
    if strategy and strategy != PROVIDER_CHOOSES:
        options["search_strategy"] = strategy
    return {"enable_search": True, "search_options": options}


def _thinking_body(call: Call, model: ModelInfo, json_mode: bool, notes: list[str]) -> dict[str, Any]:
    if model.thinking != Thinking.HYBRID:
        if call.thinking and model.thinking == Thinking.NONE:
            notes.append("note_model_cannot_think")
        return {}
    thinking = call.thinking
    if thinking and json_mode and not model.json_with_thinking:
        thinking = False
        notes.append("note_json_no_thinking")
    # Sent explicitly either way: newer Qwen models think when nothing is said (a title or a summary would
    # reason first).
    body: dict[str, Any] = {"enable_thinking": thinking}
    if thinking and call.thinking_budget:
        budget = call.thinking_budget
        if model.max_thinking_budget:
            budget = min(budget, model.max_thinking_budget)
        body["thinking_budget"] = max(1, int(budget))
    return body


# --- output caps: what a request may produce, and the same request made to fit a reserve ---------------------

MIN_USEFUL_OUTPUT = 128  # a request with less room than this (or than it asks for, if that is less) is refused
THINKING_CEILING = 38_912  # the smallest maximum reasoning length of DashScope's hybrid models, for unlisted ones


@dataclass(frozen=True)
class OutputNeed:
    """How many tokens a request may produce (answer and reasoning together), and the least worth sending."""

    wanted: int
    least: int


def reasoning_outside_max_tokens(kwargs: dict[str, Any], model: ModelInfo) -> bool:
    """DashScope's hybrid thinking: `max_tokens` bounds the answer only, `thinking_budget` the reasoning."""
    return model.thinking == Thinking.HYBRID and bool((kwargs.get("extra_body") or {}).get("enable_thinking"))


def _asked_answer(kwargs: dict[str, Any], model: ModelInfo) -> int:
    asked = kwargs.get("max_completion_tokens") or kwargs.get("max_tokens")
    return asked if isinstance(asked, int) and asked > 0 else model.max_output


def _asked_reasoning(kwargs: dict[str, Any], model: ModelInfo) -> int:
    ceiling = model.max_thinking_budget or THINKING_CEILING
    asked = (kwargs.get("extra_body") or {}).get("thinking_budget")
    return min(asked, ceiling) if isinstance(asked, int) and asked > 0 else ceiling


def output_need(kwargs: dict[str, Any], model: ModelInfo) -> OutputNeed:
    wanted = _asked_answer(kwargs, model)
    if reasoning_outside_max_tokens(kwargs, model):
        wanted += _asked_reasoning(kwargs, model)
    return OutputNeed(wanted, min(wanted, MIN_USEFUL_OUTPUT))


def cap_output(kwargs: dict[str, Any], model: ModelInfo, tokens: int) -> dict[str, Any]:
    """The request, asking for at most `tokens` of output in all: `max_tokens` (`max_completion_tokens` for
    OpenAI's reasoning models, which refuse the other), and where reasoning is not bounded by it, a
    `thinking_budget` too, the two sharing `tokens` (half each, unless one asks for less). Never raises what
    the request asked for; applying it twice changes nothing."""
    capped = {key: value for key, value in kwargs.items() if key not in ("max_tokens", "max_completion_tokens")}
    answer = _asked_answer(kwargs, model)
    if reasoning_outside_max_tokens(kwargs, model):
        reasoning = _asked_reasoning(kwargs, model)
        answer = max(1, min(answer, max(tokens - reasoning, tokens // 2)))
        capped["extra_body"] = {**kwargs["extra_body"], "thinking_budget": max(1, min(reasoning, tokens - answer))}
    else:
        answer = max(1, min(answer, tokens))
    capped["max_completion_tokens" if model.thinking == Thinking.HIDDEN else "max_tokens"] = answer
    return capped


MESSAGE_REFS = "atri_message_ids"
TEXT_ONLY = "atri_text_only"  # the images of the referenced messages were not sent
NO_VIDEO = "atri_no_video"  # their images were, their videos were not


def compact_request(record: dict[str, Any], sent: list[Message]) -> dict[str, Any]:
    """The request as stored: the thread messages it sent become their ids (the rest stays as sent).

    Every request carries the whole history before it; stored in full, a chat would grow with the
    square of its length. `expand_request` rebuilds it exactly (same rules as history_messages).
    """
    messages = record.get("messages", [])
    system = [m["content"] for m in messages if m["role"] == "system"]
    if not sent or any(m.id is None for m in sent) or len(messages) != len(system) + len(history_messages(sent)):
        return record
    parts = [p for m in messages if m["role"] != "system" and isinstance(m["content"], list)
             for p in m["content"] if isinstance(p, dict)]
    text_only = not parts and any(m.images or m.video for m in sent)
    no_video = not text_only and not any(p.get("type") in ("video", "video_url") for p in parts) and any(m.video for m in sent)
    refs = {"system": system[0] if system else None, MESSAGE_REFS: [m.id for m in sent]}
    return {**record, "messages": {**refs, **({TEXT_ONLY: True} if text_only else {}),
                                   **({NO_VIDEO: True} if no_video else {})}}


def sent_count(record: dict[str, Any] | None) -> int:
    """How many messages a stored request sent, without rebuilding them."""
    messages = (record or {}).get("messages")
    if isinstance(messages, dict):
        return len(messages.get(MESSAGE_REFS) or []) + (1 if messages.get("system") else 0)
    return len(messages) if isinstance(messages, list) else 0


def expand_request(record: dict[str, Any] | None, messages_by_id: dict[int, Message]) -> dict[str, Any] | None:
    messages = (record or {}).get("messages")
    if not isinstance(messages, dict):
        return record
    full = history_messages([messages_by_id[i] for i in messages[MESSAGE_REFS] if i in messages_by_id],
                            with_images=not messages.get(TEXT_ONLY), with_video=not messages.get(NO_VIDEO))
    if messages.get("system"):
        full.insert(0, {"role": "system", "content": messages["system"]})
    return {**record, "messages": full}
