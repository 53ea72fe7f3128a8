"""The only module that talks to the openai SDK: streams chunk dicts, maps failures to ChatError.

The Chat Completions wire format (ChatCompletions, an atri.calls.Transport). Quotas, retries of throttled
requests and the answer's bookkeeping are atri.calls' business: this module only sends and reads."""
from __future__ import annotations

import asyncio
import json
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any

import httpx2
import openai

from .errors import ChatError, classify_status
from .settings import Connection

CONNECT_TIMEOUT_S = 10.0
MAX_RETRIES = 2  # the SDK retries 408/409/429/5xx and connection errors with backoff
DETAIL_LIMIT = 400
CHAT_PATH = "/chat/completions"


@lru_cache(maxsize=32)
def make_client(conn: Connection, timeout_s: float, max_retries: int = MAX_RETRIES) -> openai.OpenAI:
    """One client (and connection pool) per provider connection; building one costs ~20 ms."""
    return openai.OpenAI(
        api_key=conn.api_key,
        base_url=conn.base_url,
        default_headers=dict(conn.headers) or None,
        timeout=httpx2.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S),
        max_retries=max_retries,
    )


# One async client per connection and event loop: an async client is tied to the loop that made it, and
# making one loads the SSL certificates (~40 ms, on the loop); a batch of 50 rows paid that 50 times.
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Connection, openai.AsyncOpenAI]] = \
    weakref.WeakKeyDictionary()


def async_client(conn: Connection) -> openai.AsyncOpenAI:
    per_loop = _async_clients.setdefault(asyncio.get_running_loop(), {})
    if conn not in per_loop:
        per_loop[conn] = openai.AsyncOpenAI(api_key=conn.api_key, base_url=conn.base_url, max_retries=MAX_RETRIES,
                                            default_headers=dict(conn.headers) or None,
                                            timeout=httpx2.Timeout(conn.timeout_s, connect=CONNECT_TIMEOUT_S))
    return per_loop[conn]


def request_body(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The JSON body as the SDK would send it (`extra_body` merged in). Posted as it is: our messages are
    plain JSON already (atri.request builds them), and walking them against the SDK's TypedDicts took
    0.22 s for a 500-message chat."""
    return {**{key: value for key, value in kwargs.items() if key != "extra_body"}, **kwargs.get("extra_body", {})}


def _chunk(data: object) -> dict[str, Any]:
    """A chunk as the JSON object the provider sent (streams are read with cast_to=object). The SDK's typed
    chunk, dumped back to a dict, cost 1.2 ms of CPU per chunk against 0.55 ms, which the embedded model
    loses from its two cores; the SDK's SSE reading, retries and errors (HTTP and in-stream) stay the same."""
    if not isinstance(data, dict):
        raise ChatError("stream_error", "the provider sent a chunk that is not a JSON object")
    return data


def _provider_reason(body: object, fallback: str) -> str:
    """The provider's own message and code from a DashScope/OpenAI-shaped error body (DashScope's own protocol
    may send it as an SSE event: its `data:` line is read)."""
    if isinstance(body, str):
        body = _sse_data(body) or body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            parts = [str(error.get(k)) for k in ("code", "message") if error.get(k)]
            if parts:
                return " — ".join(parts)
        return json.dumps(body, ensure_ascii=False)
    return fallback


def _sse_data(text: str) -> dict[str, Any] | None:
    for line in text.splitlines():
        if line.startswith("data:"):
            try:
                data = json.loads(line[5:])
            except ValueError:
                return None
            return data if isinstance(data, dict) else None
    return None


def _scrub(text: str, conn: Connection) -> str:
    for secret in (conn.api_key, *(value for _, value in conn.headers)):
        if secret and len(secret) > 3:
            text = text.replace(secret, "***")
    return text[:DETAIL_LIMIT]


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The seconds a provider's retry-after-ms or Retry-After (seconds or an HTTP date) asks for."""
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def to_chat_error(exc: BaseException, conn: Connection) -> ChatError:
    if isinstance(exc, openai.APIStatusError):
        reason = _scrub(_provider_reason(exc.body, exc.message), conn)
        return ChatError(classify_status(exc.status_code, reason), reason, retry_after(exc.response.headers))
    if isinstance(exc, openai.APITimeoutError):
        return ChatError("timeout")
    if isinstance(exc, openai.APIConnectionError):
        return ChatError("connection", _scrub(str(exc.__cause__ or exc), conn))
    if isinstance(exc, openai.APIError):  # an error event inside the stream
        return ChatError("stream_error", _scrub(exc.message, conn))
    if isinstance(exc, httpx2.TimeoutException):
        return ChatError("timeout")
    if isinstance(exc, httpx2.TransportError):  # the connection dropped mid-stream
        return ChatError("interrupted", _scrub(type(exc).__name__, conn))
    return ChatError("unknown", _scrub(type(exc).__name__, conn))


def _stream_error(exc: BaseException, conn: Connection, received: bool) -> ChatError:
    """A connection lost after the first chunk is an interrupted answer, not a failure to connect."""
    error = to_chat_error(exc, conn)
    if received and error.kind in ("connection", "timeout"):
        return ChatError("interrupted", error.detail)
    return error


class Cancel:
    """Stops a stream from another thread by closing its connection (the provider stops generating too)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._closers: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def on_cancel(self, closer: Callable[[], None]) -> None:
        with self._lock:
            self._closers.append(closer)
            run_now = self._event.is_set()
        if run_now:
            closer()

    def cancel(self) -> None:
        with self._lock:
            self._event.set()
            closers = list(self._closers)
        for closer in closers:
            try:
                closer()
            except Exception:  # noqa: BLE001 - closing a half-read response may complain; it is closed either way
                pass


@dataclass(frozen=True)
class Post:
    """One streamed request: where (a path under the base URL, or a whole URL), its JSON body, extra headers."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


Reader = Callable[[object], dict[str, Any]]  # an SSE event's JSON -> a chunk in Chat Completions' shape


def stream_chunks(conn: Connection, kwargs: dict[str, Any], cancel: Cancel | None = None) -> Iterator[dict[str, Any]]:
    """Yields each chunk as a dict (unknown fields such as reasoning_content included)."""
    return stream_post(conn, Post(CHAT_PATH, request_body(kwargs)), _chunk, cancel)


def stream_post(conn: Connection, post: Post, read: Reader, cancel: Cancel | None = None) -> Iterator[dict[str, Any]]:
    """A streamed request on the connection's client (its retries, timeouts and errors), each event `read`."""
    client = make_client(conn, conn.timeout_s)
    received = False
    try:
        stream = client.post(post.path, cast_to=object, body=post.body, options={"headers": post.headers},
                             stream=True, stream_cls=openai.Stream[object])
        if cancel:
            cancel.on_cancel(stream.close)
        try:
            for event in stream:
                if cancel and cancel.cancelled:
                    break
                received = True
                yield read(event)
        finally:
            stream.close()
    except (openai.OpenAIError, httpx2.HTTPError) as exc:
        if cancel and cancel.cancelled:
            raise ChatError("stopped") from None
        raise _stream_error(exc, conn, received) from None
    if cancel and cancel.cancelled:
        raise ChatError("stopped")


async def astream_chunks(conn: Connection, kwargs: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """stream_chunks on the async client (as the tutorial's AsyncOpenAI example): for several answers at once."""
    async for chunk in astream_post(conn, Post(CHAT_PATH, request_body(kwargs)), _chunk):
        yield chunk


async def astream_post(conn: Connection, post: Post, read: Reader) -> AsyncIterator[dict[str, Any]]:
    received = False
    try:
        stream = await async_client(conn).post(post.path, cast_to=object, body=post.body,
                                               options={"headers": post.headers}, stream=True,
                                               stream_cls=openai.AsyncStream[object])
        async with stream:
            async for event in stream:
                received = True
                yield read(event)
    except (openai.OpenAIError, httpx2.HTTPError) as exc:
        raise _stream_error(exc, conn, received) from None


class ChatCompletions:
    """The Chat Completions wire format, as atri.calls.Transport: `POST /chat/completions`, streamed."""

    def stream(self, conn: Connection, kwargs: dict[str, Any], cancel: Cancel | None) -> Iterator[dict[str, Any]]:
        return stream_chunks(conn, kwargs, cancel)

    def astream(self, conn: Connection, kwargs: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        return astream_chunks(conn, kwargs)


CHAT_COMPLETIONS = ChatCompletions()


def list_models(conn: Connection, timeout_s: float = 5.0) -> list[str]:
    """Model ids from the provider's /models endpoint; empty when it has none or can't be reached."""
    client = make_client(conn, timeout_s, max_retries=0)
    try:
        return sorted(model.id for model in client.models.list())
    except (openai.OpenAIError, httpx2.HTTPError):
        return []


# --- the provider's Batch API (files and batches) ---------------------------------------------------------

BATCH_ENDPOINT = "/v1/chat/completions"
BATCH_WINDOW = "24h"


def _batch_call(conn: Connection, call: Callable[[openai.OpenAI], Any]) -> Any:
    try:
        return call(make_client(conn, conn.timeout_s))
    except (openai.OpenAIError, httpx2.HTTPError) as exc:
        raise to_chat_error(exc, conn) from None


def _plain(made: Any) -> dict[str, Any]:
    """The SDK's object as the JSON the provider sent (fields it does not know kept)."""
    return made.model_dump(mode="json") if hasattr(made, "model_dump") else dict(made)


def upload_batch_file(conn: Connection, name: str, data: bytes) -> str:
    """A JSONL file of requests, uploaded with purpose "batch": its file id."""
    return _batch_call(conn, lambda client: client.files.create(file=(name, data, "application/jsonl"),
                                                                purpose="batch")).id


def create_batch(conn: Connection, input_file_id: str, metadata: dict[str, str]) -> dict[str, Any]:
    return _plain(_batch_call(conn, lambda client: client.batches.create(
        input_file_id=input_file_id, endpoint=BATCH_ENDPOINT, completion_window=BATCH_WINDOW, metadata=metadata)))


def retrieve_batch(conn: Connection, batch_id: str) -> dict[str, Any]:
    return _plain(_batch_call(conn, lambda client: client.batches.retrieve(batch_id)))


def cancel_batch(conn: Connection, batch_id: str) -> dict[str, Any]:
    return _plain(_batch_call(conn, lambda client: client.batches.cancel(batch_id)))


def file_content(conn: Connection, file_id: str, limit: int) -> tuple[bytes, bool]:
    """A file's first `limit` bytes, read as they come (never more held in memory), and whether it went on."""

    def read(client: openai.OpenAI) -> tuple[bytes, bool]:
        kept = bytearray()
        with client.files.with_streaming_response.content(file_id) as response:
            for piece in response.iter_bytes():
                room = limit - len(kept)
                kept += piece[:room]
                if len(piece) > room:
                    return bytes(kept), True
        return bytes(kept), False

    return _batch_call(conn, read)
