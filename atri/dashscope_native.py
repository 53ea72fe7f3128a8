"""DashScope's own protocol, as a second wire format beside Chat Completions: how a web search's sources reach
the answer.

Why this one. Model Studio's web search page (2026) says the compatible Chat Completions endpoint grounds an
answer without returning its sources, and names two ways that do: its own protocol and the Responses API. We
send a search this way because it is the one that gives sources, thinking and streaming together, for qwen3-max
and qwen3.5-plus alike, in the shape Atri already reads:
- the sources come first, as `output.search_info.search_results` `{index, title, url, site_name, icon}`, with
  citation marks in the text (`[ref_1]`) and the searches run in `usage.plugins.search.count`;
- thinking is the same switch (`enable_thinking`, `thinking_budget`) and arrives as `reasoning_content` in
  `output.choices[0].message`, incrementally with `incremental_output`; tool calls keep their shape;
- the request is the same messages under `input` and the same switches under `parameters`, so the one request
  builder (atri.request) serves both, and a chunk maps onto a Chat Completions chunk field by field (`read`);
- it lives on the same host as compatible mode, so its URL follows from any DashScope base URL, including the
  2026 workspace domains (`native_url`).
The Responses API would need a second request shape (`input` items, built-in tools), a second event grammar
(`response.*` events, sources as `url_citation` annotations rather than a list with sites), and its endpoint
differs by region and product line (`/api/v2/apps/protocols/compatible-mode/v1/responses`).

The request goes out on the connection's openai client (`client.stream_post`): the same retries, timeouts,
Stop and error mapping as Chat Completions. Only a request that searches goes this way (`transport_for`).
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .client import Cancel, Post, Reader, astream_post, stream_post
from .errors import ChatError, classify_status
from .request import sends_parts
from .settings import Connection
from .tokens import message_text

COMPATIBLE_PATH = "/compatible-mode/v1"
NATIVE_PATH = "/api/v1/services/aigc/text-generation/generation"
SSE_HEADERS = {"X-DashScope-SSE": "enable"}
NOT_FINISHED = "null"  # DashScope's finish_reason while a stream goes on is this string
MAX_DETAIL = 400
# Error codes of DashScope's own protocol, as the HTTP status that carries them (an error event in a stream
# has lost its status line), so that atri.errors names them as it names the compatible ones.
_STATUS_OF_CODE = (("invalidapikey", 401), ("invalid_api_key", 401), ("throttling", 429), ("datainspection", 400),
                   ("data_inspection", 400), ("invalidparameter", 400), ("internalerror", 500))


def native_url(base_url: str, endpoint: str = NATIVE_PATH) -> str | None:
    """An endpoint of DashScope's own protocol (text generation unless told) beside a compatible-mode base URL
    (mainland, international, a workspace domain `{WorkspaceId}.{region}.maas.aliyuncs.com`, or a proxy that keeps
    the path); None when the base URL is not a compatible-mode one."""
    try:
        parts = urlsplit(base_url.strip())
    except ValueError:
        return None
    path = parts.path.rstrip("/")
    if parts.scheme not in ("http", "https") or not parts.hostname or not path.endswith(COMPATIBLE_PATH):
        return None
    return urlunsplit(parts._replace(path=path[: -len(COMPATIBLE_PATH)] + endpoint, query="", fragment=""))


def searches_natively(conn: Connection, kwargs: dict[str, Any]) -> bool:
    """Whether this request goes over DashScope's own protocol: a web search, on a provider that flags it, at a
    base URL it can be derived from, with text-only messages (images take the multimodal endpoint, which we do
    not speak: such a search stays grounded over Chat Completions, without its list)."""
    return (conn.provider.native_search and bool((kwargs.get("extra_body") or {}).get("enable_search"))
            and native_url(conn.base_url) is not None and not sends_parts(kwargs.get("messages") or []))


def native_body(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The Chat Completions keyword arguments (atri.request) as a request of DashScope's own protocol."""
    skipped = ("model", "messages", "stream", "stream_options", "extra_body")
    parameters = {key: value for key, value in kwargs.items() if key not in skipped}
    parameters.update(kwargs.get("extra_body") or {})
    if "max_completion_tokens" in parameters:
        parameters["max_tokens"] = parameters.pop("max_completion_tokens")
    parameters |= {"result_format": "message", "incremental_output": True}
    return {"model": kwargs["model"], "input": {"messages": [_plain(m) for m in kwargs["messages"]]},
            "parameters": parameters}


def _plain(message: dict[str, Any]) -> dict[str, Any]:
    """A message whose content is text parts (a system prompt marked for the explicit cache) as one string: the
    cache marker's shape is documented for Chat Completions; here the search goes unmarked rather than refused."""
    content = message.get("content")
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return {**message, "content": "".join(str(part.get("text", "")) for part in content)}  # as before marking
    return message


def _usage(raw: dict[str, Any]) -> dict[str, Any]:
    """Native usage in Chat Completions' names (what atri.messages.usage_from_provider reads)."""
    usage: dict[str, Any] = {"prompt_tokens": raw.get("input_tokens"), "completion_tokens": raw.get("output_tokens"),
                             "total_tokens": raw.get("total_tokens")}
    if isinstance(raw.get("output_tokens_details"), dict):
        usage["completion_tokens_details"] = raw["output_tokens_details"]
    for name in ("prompt_tokens_details", "plugins"):
        if isinstance(raw.get(name), dict):
            usage[name] = raw[name]
    return usage


def native_error(data: dict[str, Any]) -> ChatError:
    code, message = str(data.get("code") or ""), str(data.get("message") or "")
    detail = " — ".join(part for part in (code, message) if part)[:MAX_DETAIL]
    status = next((status for key, status in _STATUS_OF_CODE if key in code.lower()), None)
    return ChatError(classify_status(status, detail) if status else "stream_error", detail)


def _event(data: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """An event and its `output`; raises the error an event without one carries."""
    if isinstance(data, dict) and isinstance(data.get("output"), dict):
        return data, data["output"]
    if isinstance(data, dict) and (data.get("code") or data.get("message")):
        raise native_error(data)
    raise ChatError("stream_error", "the provider sent an event that is not a JSON object with an output")


def _finish_reason(raw: object) -> str | None:
    return raw if isinstance(raw, str) and raw and raw != NOT_FINISHED else None


class NativeReader:
    """Reads one stream's events into Chat Completions chunks. The search results are passed on when they first
    come (or change), not with every event that repeats them; usage only with the last event, which has it whole."""

    def __init__(self) -> None:
        self._search_info: object = None

    def read(self, data: object) -> dict[str, Any]:
        data, output = _event(data)
        chunk: dict[str, Any] = {"id": data.get("request_id"), "object": "chat.completion.chunk", "choices": []}
        finished = False
        for index, choice in enumerate(output.get("choices") or []):
            if not isinstance(choice, dict):
                continue
            message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
            reason = _finish_reason(choice.get("finish_reason"))
            finished = finished or (index == 0 and reason is not None)
            delta = {key: message[key] for key in ("role", "content", "reasoning_content", "tool_calls") if key in message}
            chunk["choices"].append({"index": index, "delta": delta, "finish_reason": reason})
        info = output.get("search_info")
        if isinstance(info, dict) and info != self._search_info:
            self._search_info = info
            chunk["search_info"] = info
        if finished and isinstance(data.get("usage"), dict):
            chunk["usage"] = _usage(data["usage"])
        return chunk


class DashScopeProtocol:
    """DashScope's own protocol, as atri.calls.Transport: an endpoint beside the compatible-mode base URL, its body
    made from the Chat Completions keyword arguments (atri.request), streamed as SSE (`event:result`), each event
    read into a Chat Completions chunk."""

    def __init__(self, endpoint: str, body: Callable[[dict[str, Any]], dict[str, Any]],
                 reader: Callable[[], Reader]) -> None:
        self.endpoint, self.body, self.reader = endpoint, body, reader

    def _post(self, conn: Connection, kwargs: dict[str, Any]) -> Post:
        url = native_url(conn.base_url, self.endpoint)
        if url is None:
            raise ChatError("bad_request", "DashScope's own protocol is not reachable from this base URL")
        return Post(url, self.body(kwargs), dict(SSE_HEADERS))

    def stream(self, conn: Connection, kwargs: dict[str, Any], cancel: Cancel | None) -> Iterator[dict[str, Any]]:
        return stream_post(conn, self._post(conn, kwargs), self.reader(), cancel)

    def astream(self, conn: Connection, kwargs: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        return astream_post(conn, self._post(conn, kwargs), self.reader())


DASHSCOPE_NATIVE = DashScopeProtocol(NATIVE_PATH, native_body, lambda: NativeReader().read)


# --- speech out: qwen3-tts-flash --------------------------------------------------------------------------

SPEECH_PATH = "/api/v1/services/aigc/multimodal-generation/generation"


def can_speak(conn: Connection) -> bool:
    """The provider has a speech model, and its own protocol is reachable from this base URL (a proxy that
    serves Chat Completions only does not serve it)."""
    return conn.provider.speech_model is not None and native_url(conn.base_url, SPEECH_PATH) is not None


def speaks_natively(conn: Connection, kwargs: dict[str, Any]) -> bool:
    """A request for the provider's speech model, which only DashScope's own protocol serves."""
    return can_speak(conn) and kwargs.get("model") == conn.provider.speech_model


def speech_body(kwargs: dict[str, Any]) -> dict[str, Any]:
    """`POST …/multimodal-generation/generation`: the text of the request's last message, with the voice and
    language its `extra_body` names."""
    messages = kwargs.get("messages") or [{}]
    extra = kwargs.get("extra_body") or {}
    return {"model": kwargs["model"], "input": {"text": message_text(messages[-1].get("content") or ""),
                                                 **{key: extra[key] for key in ("voice", "language_type") if key in extra}}}


def read_speech(data: object) -> dict[str, Any]:
    """One streamed event of speech (`output.audio.data`: base64 PCM, 24 kHz, 16-bit mono) as a Chat Completions
    chunk with an audio delta, the way an audio-output model streams it."""
    data, output = _event(data)
    audio = output.get("audio") if isinstance(output.get("audio"), dict) else {}
    reason = _finish_reason(output.get("finish_reason"))
    chunk: dict[str, Any] = {"id": data.get("request_id"), "object": "chat.completion.chunk",
                             "choices": [{"index": 0, "delta": {"audio": {"data": audio.get("data") or ""}},
                                          "finish_reason": reason}]}
    usage = data.get("usage")
    if reason and isinstance(usage, dict):
        chunk["usage"] = {"prompt_tokens": usage.get("input_tokens") or usage.get("characters") or 0,
                          "completion_tokens": usage.get("output_tokens") or 0}
    return chunk


DASHSCOPE_SPEECH = DashScopeProtocol(SPEECH_PATH, speech_body, lambda: read_speech)  # qwen3-tts-flash

