"""A loopback HTTP server that answers like DashScope's compatible mode, scripted for tests.

Real HTTP, real SSE: the openai SDK talks to it exactly as it talks to DashScope. Behaviour it
copies: reasoning_content deltas when thinking (first chunk `{"role":"assistant","content":null,
"reasoning_content":""}`), the final usage chunk with empty choices, the 400 when JSON mode has no
"json" word, the 400 for JSON mode while thinking, DashScope-shaped 401/429/500 bodies, and tool calls
(a request with `tools` whose question holds `[[name {args}]]` gets those calls streamed as DashScope and
OpenAI stream them, then an answer quoting the `role: "tool"` results, and counting the images of the user
message that may follow them), and `max_tokens`: an answer longer
than it stops there with finish_reason "length" (reasoning is bounded by `thinking_budget` only).
`answer_tokens` makes every answer a long one, to see what bounds it.
Faults for the next requests are queued with `script()`.
"""
from __future__ import annotations

import argparse
import base64
import email
import email.policy
import io
import json
import math
import re
import socket
import struct
import threading
import time
import uuid
import wave
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from atri.titles import TITLE_PROMPT

GOOD_KEY = "sk-test-good-key"
MODELS = ["qwen3-max", "qwen-plus", "qwen3-vl-plus", "qwq-plus"]


@dataclass
class Fault:
    # "status" | "cut" (connection dropped) | "truncate" (body ends early, cleanly) | "stream_error" | "length"
    # | "slow" | "answer" (streams `text` instead of the echo) | "not_object" (a JSON array where a chunk goes)
    kind: str
    status: int = 500
    body: dict[str, Any] | None = None
    after_chunks: int = 2
    delay_s: float = 0.0
    headers: dict[str, str] | None = None  # extra response headers of a "status" fault (e.g. Retry-After)
    when: str | None = None  # taken only by a request whose last user message contains this text
    text: str = ""  # what an "answer" fault streams instead of the echo


def error_body(code: str, message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "param": None, "type": kind},
            "request_id": str(uuid.uuid4())}


UNAUTHORIZED = error_body("invalid_api_key", "Incorrect API key provided. ")
RATE_LIMITED = error_body("Throttling.RateQuota", "Requests rate limit exceeded, please try again later.", "limit_requests")
QUOTA = error_body("Throttling.AllocationQuota", "Allocated quota exceeded, please increase your quota limit.", "limit_requests")
SERVER_ERROR = error_body("InternalError", "An internal error has occured, please try again later.", "internal_error")
MODERATION = error_body("data_inspection_failed", "Input data may contain inappropriate content.", "data_inspection_failed")
TOO_LONG = error_body("InvalidParameter", "<400> InternalError.Algo.InvalidParameter: Range of input length should be [1, 258048]")
NO_JSON_WORD = error_body(
    "invalid_parameter_error",
    "<400> InternalError.Algo.InvalidParameter: 'messages' must contain the word 'json' in some form, "
    "to use 'response_format' of type 'json_object'.")
JSON_WHILE_THINKING = error_body(
    "invalid_parameter_error",
    "<400> InternalError.Algo.InvalidParameter: Json mode response is not supported when enable_thinking is true")
STREAM_ONLY = error_body(
    "invalid_parameter_error", "This model only support stream mode, please enable the stream parameter to access the model. ")
STREAM_ONLY_MODEL = re.compile(r"^(qwq|qvq)|^qwen3-(\d+(\.\d+)?b|\d+b-a\d+b)")  # open-source qwen3-*, QwQ, QVQ
NON_STREAM_THINKING = error_body(
    "invalid_parameter_error",
    "<400> InternalError.Algo.InvalidParameter: parameter.enable_thinking must be set to false for non-streaming calls")


def is_title_call(body: dict[str, Any]) -> bool:
    messages = body.get("messages") or [{}]
    return messages[0].get("role") == "system" and messages[0].get("content") == TITLE_PROMPT


HEARD = "What is the capital of France?"


def transcript(body: dict[str, Any], heard: str) -> str:
    """qwen3-asr-flash over Chat Completions: the recording comes as an `input_audio` part (a URL or a
    base64 data URL), the transcript as the answer's content. The fake hears `heard` in a WAV with frames,
    nothing in anything else."""
    parts = [p for m in body["messages"] if isinstance(m["content"], list) for p in m["content"]]
    audio = next((p["input_audio"]["data"] for p in parts if p.get("type") == "input_audio"), "")
    try:
        with wave.open(io.BytesIO(base64.b64decode(audio.split(",", 1)[1]))) as recording:
            return heard if recording.getnframes() else ""
    except (IndexError, ValueError, wave.Error, EOFError):
        return ""


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if content is None:  # an assistant message that only called tools
        return ""
    return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")


def count_tokens(text: str) -> int:
    return max(1, len(text) // 3)


STORY = "Once upon a time a cat walked along the river, and the river went on, and so did the cat. "
LONG_TEXT_CHARS = 2_000  # longer answers stream in pieces of several words, as a real provider's do
PIECE_CHARS = 60


def long_answer(start: str, tokens: int) -> str:
    """`start`, then a story that goes on until the answer is `tokens` tokens long (by count_tokens)."""
    chars = tokens * 3
    text = start + " " + STORY * (chars // len(STORY) + 1)
    return text[:max(chars, len(start))]


def within_max_tokens(answer: str, max_tokens: Any) -> tuple[str, bool]:
    """The answer as DashScope sends it under `max_tokens` (which bounds the answer, not the reasoning):
    cut where the tokens run out, and whether it was cut."""
    if not isinstance(max_tokens, int) or max_tokens <= 0 or count_tokens(answer) <= max_tokens:
        return answer, False
    return answer[:max_tokens * 3], True


def text_pieces(text: str, sep: str = " ") -> list[str]:
    """Word by word; a long text a few words at a time."""
    if len(text) <= LONG_TEXT_CHARS:
        words = text.split(sep) if text else []
        return [w + (sep if i < len(words) - 1 else "") for i, w in enumerate(words)]
    return [text[i:i + PIECE_CHARS] for i in range(0, len(text), PIECE_CHARS)]


REASONING = "Let me think about this step by step. The user wants a friendly reply."

# Tool calls, scripted by the question: `[[calculator {"expression": "2+3"}]]` asks for that call (several
# markers: several calls in parallel); `[[loop]]` makes every request with tools call the calculator again.
TOOL_MARKER = re.compile(r"\[\[([\w-]+)\s*(\{.*?\})?\]\]")
LOOP_MARKER = "[[loop]]"

# Web search: a request with enable_search gets these sources in the shape DashScope documents for its own
# protocol (output.search_info.search_results: index, title, url, site_name, icon), here at the top level of
# the first chunk, and an answer citing them in the requested citation_format. Model Studio's docs say the
# compatible endpoint returns no sources; this is the shape atri.websearch accepts if it ever does.
SEARCH_RESULTS = [
    {"index": 1, "title": "Atri news: tools arrive", "url": "https://news.example.com/atri-tools",
     "site_name": "Example News", "icon": "https://news.example.com/favicon.ico"},
    {"index": 2, "title": "KaTeX in chat apps", "url": "https://blog.example.org/katex", "site_name": "Example Blog",
     "icon": ""},
]


def searched_answer(body: dict[str, Any]) -> str:
    mark = (body.get("search_options") or {}).get("citation_format") or "[<number>]"
    cite = [mark.replace("<number>", str(source["index"])) for source in SEARCH_RESULTS]
    return f"Today Atri learned to call tools {cite[0]}, and formulas render, as in \\(e^{{i\\pi}} + 1 = 0\\) {cite[1]}."


def tool_calls_asked(body: dict[str, Any], question: str) -> list[tuple[str, str]]:
    """The (name, arguments JSON) calls the request should get back: none without tools or with tool_choice
    "none", and none once results came back (unless the question asks for a loop)."""
    if not body.get("tools") or body.get("tool_choice") == "none":
        return []
    offered = {tool["function"]["name"] for tool in body["tools"]}
    if LOOP_MARKER in question:
        return [("calculator", json.dumps({"expression": "1+1"}))]
    if results_end(body["messages"]) is not None:
        return []
    calls = [(name, arguments or "{}") for name, arguments in TOOL_MARKER.findall(question) if name != "loop"]
    return [(name, arguments) for name, arguments in calls if name in offered]


def results_end(messages: list[dict[str, Any]]) -> int | None:
    """Where the latest tool results end when the request ends with them: after the last `tool` message, or
    after the user message that carries their images (what a vision model is sent); None otherwise."""
    if messages and messages[-1].get("role") == "tool":
        return len(messages)
    if len(messages) >= 2 and messages[-2].get("role") == "tool" and images_in(messages[-1]):
        return len(messages) - 1
    return None


def images_in(message: dict[str, Any]) -> int:
    content = message.get("content")
    return sum(1 for part in content if part.get("type") == "image_url") if isinstance(content, list) else 0


def question_of(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The last user message that is a question (not the images of tool results)."""
    end = results_end(messages)
    asked = messages[:len(messages) - 1] if end is not None and end < len(messages) else messages
    return next((m for m in reversed(asked) if m.get("role") == "user"), {"content": ""})


def tool_results_answer(body: dict[str, Any]) -> str | None:
    """After tool results: an answer that quotes them (name = result), as a model would use them, saying how
    many images came with them."""
    messages = body["messages"]
    end = results_end(messages)
    if end is None:
        return None
    names = {call["id"]: call["function"]["name"] for m in messages if m.get("role") == "assistant"
             for call in m.get("tool_calls") or []}
    results = []
    for message in reversed(messages[:end]):
        if message.get("role") != "tool":
            break
        results.insert(0, f"{names.get(message.get('tool_call_id'), '?')} = {message.get('content')}")
    images = images_in(messages[-1]) if end < len(messages) else 0
    return "Tool results: " + "; ".join(results) + (f" (I see {images} image{'s' if images != 1 else ''})" if images else "")


# --- Files and Batches: DashScope's OpenAI-compatible Batch API (issue 31) ----------------------------------
# POST /files (multipart: `file`, `purpose` "batch") gives a file object; GET /files/{id}/content its bytes.
# POST /batches {input_file_id, endpoint "/v1/chat/completions", completion_window "24h"}; GET /batches/{id};
# POST /batches/{id}/cancel. A batch moves on at each retrieve, as a test drives it: validating (the file is
# checked: JSON lines with a unique custom_id, method POST, the endpoint's url, one model) → in_progress (then
# `lines_per_poll` rows are answered per retrieve; all at once when 0; none while `hold`) → finalizing →
# completed. After `expire_after` answered rows it expires with the rest unanswered; a cancel goes cancelling →
# cancelled at the next retrieve. An ended batch has an output file (the rows answered) and an error file (the
# rows refused, and those never run: `batch_expired` / `batch_cancelled`), each only when it has lines.
# Faults queued with `script()` apply to rows as to real-time requests (a "status" fault: that row's error).

BATCH_MAX_LINES = 50_000
BATCH_MAX_FILE_BYTES = 100 * 1024 * 1024
BATCH_ENDED = ("completed", "failed", "expired", "cancelled")
NEVER_RAN = {"expired": ("batch_expired", "This request could not be executed before the completion window expired."),
             "cancelled": ("batch_cancelled", "This request was not executed because the batch was cancelled.")}


class FakeBatches:
    def __init__(self, provider: FakeProvider) -> None:
        self.provider = provider
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.work: dict[str, dict[str, Any]] = {}  # per batch: its lines, the next one, output and error lines
        self.bodies: list[dict[str, Any]] = []  # every row's request body as it was answered
        self.lines_per_poll = 0
        self.expire_after: int | None = None
        self.hold = False
        self.retrieves = 0

    @staticmethod
    def serves(path: str) -> bool:
        return path.split("?")[0].startswith(("/v1/files", "/v1/batches"))

    def handle(self, handler: Any, method: str) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length", 0))) if method == "POST" else b""
        if not handler._authorized():
            return
        parts = handler.path.split("?")[0].rstrip("/").split("/")[2:]  # ["files", id, "content"], ["batches", …]
        with self.lock:
            status, body = self._route(method, parts, raw, handler.headers.get("Content-Type", ""))
        if isinstance(body, bytes):
            handler.send_response(status)
            handler.send_header("Content-Type", "application/octet-stream")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        else:
            handler._json(status, body)

    def _route(self, method: str, parts: list[str], raw: bytes, content_type: str) -> tuple[int, Any]:
        if parts == ["files"] and method == "POST":
            return self._upload(raw, content_type)
        if len(parts) == 3 and parts[0] == "files" and parts[2] == "content" and method == "GET":
            data = self.contents.get(parts[1])
            return (200, data) if data is not None else (404, error_body("NotFound", f"File {parts[1]} not found."))
        if len(parts) == 2 and parts[0] == "files" and method == "GET":
            found = self.files.get(parts[1])
            return (200, found) if found else (404, error_body("NotFound", f"File {parts[1]} not found."))
        if parts == ["batches"] and method == "POST":
            return self._create(json.loads(raw or b"{}"))
        batch = self.batches.get(parts[1]) if len(parts) >= 2 and parts[0] == "batches" else None
        if batch is None:
            return 404, error_body("NotFound", "The batch does not exist.")
        if len(parts) == 2 and method == "GET":
            self.retrieves += 1
            self._advance(batch)
            return 200, batch
        if len(parts) == 3 and parts[2] == "cancel" and method == "POST":
            if batch["status"] in BATCH_ENDED or batch["status"] == "cancelling":
                return 400, error_body("InvalidParameter", f"Batch {batch['id']} cannot be cancelled: it is {batch['status']}.")
            batch.update(status="cancelling", cancelling_at=int(time.time()))
            return 200, batch
        return 404, error_body("NotFound", "not found")

    def _upload(self, raw: bytes, content_type: str) -> tuple[int, Any]:
        form = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw,
                                        policy=email.policy.HTTP)
        fields = {part.get_param("name", header="content-disposition"): part for part in form.iter_parts()} \
            if form.is_multipart() else {}
        if "file" not in fields:
            return 400, error_body("InvalidParameter", "Missing required parameter: file.")
        purpose = (fields["purpose"].get_payload(decode=True) or b"").decode() if "purpose" in fields else ""
        if purpose not in ("batch", "file-extract"):
            return 400, error_body("InvalidParameter", f"Invalid purpose: {purpose!r}.")
        data = fields["file"].get_payload(decode=True) or b""
        if purpose == "batch" and len(data) > BATCH_MAX_FILE_BYTES:
            return 400, error_body("InvalidParameter", "The file exceeds the maximum size for batch (100 MB).")
        file_id = f"file-batch-{uuid.uuid4().hex[:24]}"
        self.contents[file_id] = data
        self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                               "filename": fields["file"].get_filename() or "upload.jsonl", "purpose": purpose,
                               "status": "processed"}
        return 200, self.files[file_id]

    def _create(self, body: dict[str, Any]) -> tuple[int, Any]:
        if body.get("input_file_id") not in self.files:
            return 404, error_body("NotFound", f"File {body.get('input_file_id')} not found.")
        if body.get("endpoint") != "/v1/chat/completions":
            return 400, error_body("InvalidParameter", f"Unsupported endpoint: {body.get('endpoint')}.")
        if body.get("completion_window") != "24h":
            return 400, error_body("InvalidParameter", "completion_window only supports 24h.")
        created = int(time.time())
        batch_id = f"batch_{uuid.uuid4()}"
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
            "input_file_id": body["input_file_id"], "completion_window": "24h", "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": created, "in_progress_at": None,
            "expires_at": created + 86400, "finalizing_at": None, "completed_at": None, "failed_at": None,
            "expired_at": None, "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": body.get("metadata")}
        self.work[batch_id] = {"lines": [], "next": 0, "output": [], "errors": []}
        return 200, self.batches[batch_id]

    def _advance(self, batch: dict[str, Any]) -> None:
        work, status, moment = self.work[batch["id"]], batch["status"], int(time.time())
        if status == "validating":
            problem = self._validate(batch, work)
            if problem:
                batch.update(status="failed", failed_at=moment, errors={"object": "list", "data": [problem]})
            else:
                batch.update(status="in_progress", in_progress_at=moment)
                batch["request_counts"]["total"] = len(work["lines"])
        elif status == "in_progress" and not self.hold:
            count = self.lines_per_poll or len(work["lines"])
            for _ in range(count):
                if work["next"] >= len(work["lines"]):
                    break
                if self.expire_after is not None and work["next"] >= self.expire_after:
                    self._end(batch, work, "expired")
                    return
                self._answer(work, work["lines"][work["next"]])
                work["next"] += 1
            self._count(batch, work)
            if work["next"] >= len(work["lines"]):
                batch.update(status="finalizing", finalizing_at=moment)
        elif status == "finalizing":
            self._end(batch, work, "completed")
        elif status == "cancelling":
            self._end(batch, work, "cancelled")

    def _validate(self, batch: dict[str, Any], work: dict[str, Any]) -> dict[str, Any] | None:
        seen, models = set(), set()
        raw_lines = [line for line in self.contents[batch["input_file_id"]].split(b"\n") if line.strip()]
        if not raw_lines or len(raw_lines) > BATCH_MAX_LINES:
            return {"code": "invalid_file", "message": f"A batch file holds 1 to {BATCH_MAX_LINES} requests.",
                    "line": None, "param": None}
        for number, raw in enumerate(raw_lines, 1):
            try:
                line = json.loads(raw)
            except ValueError:
                line = None
            if not isinstance(line, dict) or not isinstance(line.get("body"), dict) or line.get("method") != "POST" \
                    or line.get("url") != batch["endpoint"] or not line.get("custom_id") or line["custom_id"] in seen:
                return {"code": "invalid_request", "message": "The line is not a valid batch request.",
                        "line": number, "param": None}
            seen.add(line["custom_id"])
            models.add(line["body"].get("model"))
            work["lines"].append(line)
        if len(models) != 1:
            return {"code": "mixed_models", "message": "All requests of a batch must use the same model.",
                    "line": None, "param": "model"}
        return None

    def _answer(self, work: dict[str, Any], line: dict[str, Any]) -> None:
        body, provider = line["body"], self.provider
        self.bodies.append(body)
        request_id = str(uuid.uuid4())
        fault = provider.take_fault(body)
        refusal = fault.body or SERVER_ERROR if fault and fault.kind == "status" else None
        json_mode = body.get("response_format", {}).get("type") == "json_object"
        if refusal is None and json_mode and "json" not in json.dumps(body["messages"], ensure_ascii=False).lower():
            refusal, fault = NO_JSON_WORD, Fault("status", 400)
        if refusal is not None:
            work["errors"].append({"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": line["custom_id"],
                                   "response": {"status_code": fault.status, "request_id": request_id, "body": refusal},
                                   "error": {"code": refusal["error"]["code"], "message": refusal["error"]["message"]}})
            return
        answer, cut = within_max_tokens(provider.answer_for(body), body.get("max_tokens"))
        reasoning = provider.reasoning_text if body.get("enable_thinking") else ""
        prompt = sum(count_tokens(text_of(m["content"])) for m in body["messages"])
        completion = count_tokens(answer) + len(reasoning.split())
        provider.bill(prompt + completion)
        message = {"role": "assistant", "content": answer, **({"reasoning_content": reasoning} if reasoning else {})}
        work["output"].append({"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": line["custom_id"], "error": None,
                               "response": {"status_code": 200, "request_id": request_id, "body": {
                                   "id": f"chatcmpl-{uuid.uuid4()}", "object": "chat.completion",
                                   "created": int(time.time()), "model": body["model"],
                                   "choices": [{"index": 0, "finish_reason": "length" if cut else "stop",
                                                "message": message}],
                                   "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                             "total_tokens": prompt + completion,
                                             "completion_tokens_details": {"reasoning_tokens": len(reasoning.split())}}}}})

    def _count(self, batch: dict[str, Any], work: dict[str, Any]) -> None:
        batch["request_counts"].update(completed=len(work["output"]), failed=len(work["errors"]))

    def _end(self, batch: dict[str, Any], work: dict[str, Any], status: str) -> None:
        if status in NEVER_RAN:
            code, message = NEVER_RAN[status]
            for line in work["lines"][work["next"]:]:
                work["errors"].append({"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": line["custom_id"],
                                       "response": None, "error": {"code": code, "message": message}})
            work["next"] = len(work["lines"])
        for kind, lines in (("output_file_id", work["output"]), ("error_file_id", work["errors"])):
            if lines:
                file_id = f"file-batch-{uuid.uuid4().hex[:24]}"
                data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
                self.contents[file_id] = data
                self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(data), "filename": f"{kind}.jsonl",
                                       "created_at": int(time.time()), "purpose": "batch_output", "status": "processed"}
                batch[kind] = file_id
        self._count(batch, work)
        batch.update(status=status, **{f"{status}_at": int(time.time())})
# --- DashScope's explicit context cache (issue 31) -----------------------------------------------------------
# As Model Studio's "Context cache" page documents it: a content block carrying `"cache_control": {"type":
# "ephemeral"}` ends a cache block that runs from the start of `messages`. Unseen, a block of ≥ 1,024 tokens is
# created (usage.prompt_tokens_details.cache_creation_input_tokens, billed at 125 %); seen within 5 minutes, the
# longest such block is hit (cached_tokens, billed at 10 %) and its 5 minutes start again. Shorter blocks are not
# cached. Both kinds report cache_type "ephemeral". Tokens are counted as the fake counts prompt_tokens.
EXPLICIT_CACHE_MIN_TOKENS = 1024
EXPLICIT_CACHE_TTL_S = 300.0


def marked_prefixes(messages: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """Each cache block the request marks, as (its text from the start of `messages`, its tokens)."""
    blocks: list[tuple[str, int]] = []
    before: list[str] = []  # the text of whole messages before the current one
    for message in messages:
        content = message.get("content")
        parts = content if isinstance(content, list) else []
        for index, part in enumerate(parts):
            if isinstance(part, dict) and part.get("cache_control", {}).get("type") == "ephemeral":
                upto = text_of(parts[:index + 1])
                tokens = sum(count_tokens(text) for text in before) + count_tokens(upto)
                blocks.append(("\x00".join([*before, upto]), tokens))
        before.append(text_of(content))
    return blocks


class ExplicitCache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clock = time.monotonic  # a test may move time on
        self.blocks: dict[str, float] = {}  # a cached block's text -> when it expires

    def reset(self) -> None:
        with self.lock:
            self.blocks.clear()
            self.clock = time.monotonic

    def details(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The request's usage.prompt_tokens_details: what it hit and what it wrote."""
        marked = marked_prefixes(messages)
        if not marked:
            return {"cached_tokens": 0}
        with self.lock:
            now = self.clock()
            self.blocks = {text: until for text, until in self.blocks.items() if until > now}
            hit = max((tokens for text, tokens in marked if text in self.blocks), default=0)
            for text, _ in marked:
                if text in self.blocks:
                    self.blocks[text] = now + EXPLICIT_CACHE_TTL_S
            last_text, last_tokens = marked[-1]
            written = 0
            if last_text not in self.blocks and last_tokens >= EXPLICIT_CACHE_MIN_TOKENS:
                self.blocks[last_text] = now + EXPLICIT_CACHE_TTL_S
                written = last_tokens - hit
        if not hit and not written:
            return {"cached_tokens": 0}
        details: dict[str, Any] = {"cached_tokens": hit, "cache_type": "ephemeral"}
        if written:
            details |= {"cache_creation_input_tokens": written, "cache_creation": {"ephemeral_5m_input_tokens": written}}
        return details


# --- DashScope's own protocol (issue 31) ---------------------------------------------------------------------
# `POST {host}/api/v1/services/aigc/text-generation/generation`, body `{"model", "input": {"messages"},
# "parameters": {...}}`, as Model Studio documents it: with `X-DashScope-SSE: enable`, SSE events `id:` /
# `event:result` / `:HTTP_STATUS/200` / `data:{...}`; each event's `output.choices[0].message` holds the new text
# (`incremental_output`), `finish_reason` is the string "null" until the last; `output.search_info` comes in the
# first events when `search_options.enable_source` is set; `usage` (input_tokens, output_tokens, …) in every event,
# with `plugins.search.count`. Errors: the HTTP status with `{"code", "message", "request_id"}`, or, mid-stream, an
# `event:error` carrying the same. Without the SSE header: one JSON response. Faults that apply here: "status"
# (its body should be native_error's), "stream_error" (an error event after `after_chunks` events), "cut", and
# "no_search" (the search is skipped, as above 15 requests/s: count 0, no search_info, an answer without marks).
NATIVE_PATH = "/api/v1/services/aigc/text-generation/generation"


def native_error(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": str(uuid.uuid4())}


NATIVE_UNAUTHORIZED = native_error("InvalidApiKey", "Invalid API-key provided.")
NATIVE_RATE_LIMITED = native_error("Throttling.RateQuota", "Requests rate limit exceeded, please try again later.")
NATIVE_MODERATION = native_error("DataInspectionFailed", "Input data may contain inappropriate content.")


def compatible_url(provider: FakeProvider) -> str:
    """The fake's address as a DashScope compatible-mode base URL (the native endpoint is derived from it)."""
    return provider.base_url.removesuffix("/v1") + "/compatible-mode/v1"


def _native_events(provider: FakeProvider, body: dict[str, Any], fault: Fault | None) -> list[dict[str, Any]]:
    parameters = body.get("parameters") or {}
    flat = {"model": body.get("model", ""), "messages": (body.get("input") or {}).get("messages") or [], **parameters}
    searched = bool(parameters.get("enable_search")) and not (fault and fault.kind == "no_search")
    answer = provider.answer_for({**flat, "enable_search": searched})
    thinking = bool(parameters.get("enable_thinking"))
    reasoning = " ".join(provider.reasoning_text.split()) + " " if thinking else ""
    prompt = sum(count_tokens(text_of(m.get("content"))) for m in flat["messages"])
    pieces = [("", piece) for piece in text_pieces(reasoning)] + [(piece, "") for piece in text_pieces(answer)]
    events, said, thought = [], "", ""
    for index, (text, reasoning_piece) in enumerate(pieces + [("", "")]):
        said, thought = said + text, thought + reasoning_piece
        last = index == len(pieces)
        output: dict[str, Any] = {"choices": [{"message": {"role": "assistant", "content": text,
                                                           "reasoning_content": reasoning_piece},
                                               "finish_reason": "stop" if last else "null"}]}
        if searched and parameters.get("search_options", {}).get("enable_source") and index < 2:
            output["search_info"] = {"search_results": SEARCH_RESULTS}
        usage: dict[str, Any] = {"input_tokens": prompt, "output_tokens": count_tokens(said) + len(thought.split()),
                                 "total_tokens": prompt + count_tokens(said) + len(thought.split()),
                                 "output_tokens_details": {"reasoning_tokens": len(thought.split())},
                                 "prompt_tokens_details": {"cached_tokens": 0}}
        if parameters.get("enable_search"):
            usage["plugins"] = {"search": {"count": 1 if searched else 0,
                                           "strategy": parameters.get("search_options", {}).get("search_strategy", "")}}
        events.append({"output": output, "usage": usage, "request_id": str(uuid.uuid4())})
    return events


def serve_native(handler: Any, provider: FakeProvider, body: dict[str, Any]) -> None:
    """One request of DashScope's own protocol, answered on `handler` (the fake's request handler)."""
    provider.requests.append(body)
    if not handler._authorized_as(NATIVE_UNAUTHORIZED):
        return
    messages = (body.get("input") or {}).get("messages") or []
    fault = provider.take_fault({"messages": messages})
    if fault and fault.kind == "status":
        handler._json(fault.status, fault.body or native_error("InternalError", "An internal error has occured."))
        return
    events = _native_events(provider, body, fault)
    if (handler.headers.get("X-DashScope-SSE") or "").lower() != "enable":
        whole = "".join(e["output"]["choices"][0]["message"]["content"] for e in events)
        events[-1]["output"]["choices"][0]["message"]["content"] = whole
        handler._json(200, events[-1])
        return
    provider.bill(events[-1]["usage"]["total_tokens"])
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream;charset=UTF-8")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    try:
        for number, event in enumerate(events, start=1):
            if fault and fault.kind == "cut" and number > fault.after_chunks:
                handler.connection.shutdown(socket.SHUT_RDWR)
                handler.close_connection = True
                return
            if fault and fault.kind == "stream_error" and number > fault.after_chunks:
                error = fault.body or native_error("InternalError", "Stream interrupted by an upstream error.")
                handler._send_raw(f"id:{number}\nevent:error\n:HTTP_STATUS/500\ndata:{json.dumps(error)}\n\n".encode())
                break
            data = json.dumps(event, ensure_ascii=False)
            handler._send_raw(f"id:{number}\nevent:result\n:HTTP_STATUS/200\ndata:{data}\n\n".encode())
            time.sleep(provider.chunk_delay_s)
        handler.wfile.write(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        provider.hangups += 1
        handler.close_connection = True


# --- Speech out: qwen3-tts-flash over DashScope's own protocol (issue 33) -----------------------------------
# POST /api/v1/services/aigc/multimodal-generation/generation {"model", "input": {"text", "voice", "language_type"}}
# with `X-DashScope-SSE: enable`: events whose output.audio.data is base64 PCM (24 kHz, 16-bit mono), the last
# with finish_reason "stop" and usage {"characters": n}. A text over 600 characters is refused (400).

SPEECH_PATH = "/api/v1/services/aigc/multimodal-generation/generation"
SPEECH_MAX_CHARS = 600
SPEECH_RATE = 24_000
SPEECH_S_PER_CHAR = 0.02  # the fake's speaking speed: a longer text, a longer recording


def speech_pcm(seconds: float) -> bytes:
    """A 440 Hz tone: audible, so a page's player has something to play."""
    count = int(seconds * SPEECH_RATE)
    return b"".join(struct.pack("<h", int(6000 * math.sin(2 * math.pi * 440 * n / SPEECH_RATE))) for n in range(count))


def serve_speech(handler: Any, provider: FakeProvider, body: dict[str, Any]) -> None:
    provider.speech_requests.append(body)
    if not handler._authorized_as(NATIVE_UNAUTHORIZED):
        return
    if provider.speech_down:
        handler._json(500, native_error("InternalError", "An internal error has occured."))
        return
    text = str((body.get("input") or {}).get("text") or "")
    if body.get("model") != "qwen3-tts-flash" or not text.strip():
        handler._json(400, native_error("InvalidParameter", "model or input.text is invalid"))
        return
    if len(text) > SPEECH_MAX_CHARS:
        handler._json(400, native_error("InvalidParameter", f"Range of input length should be [1, {SPEECH_MAX_CHARS}]"))
        return
    pcm = speech_pcm(len(text) * SPEECH_S_PER_CHAR)
    pieces = [pcm[start:start + 9600] for start in range(0, len(pcm), 9600)] or [b""]
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream;charset=UTF-8")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    for number, piece in enumerate(pieces, start=1):
        last = number == len(pieces)
        event = {"request_id": str(uuid.uuid4()),
                 "output": {"finish_reason": "stop" if last else "null",
                            "audio": {"data": base64.b64encode(piece).decode(), "id": "audio_1"}},
                 "usage": {"characters": len(text)} if last else {}}
        handler._send_raw(f"id:{number}\nevent:result\n:HTTP_STATUS/200\ndata:{json.dumps(event)}\n\n".encode())
    handler.wfile.write(b"0\r\n\r\n")


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    # As a real server's (uvicorn: 2048). socketserver's 5 drops part of a burst of connections (a batch's
    # eight rows), and a dropped connection's SYN is sent again only a second later.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients closing keep-alive connections is normal


class FakeProvider:
    def __init__(self, port: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.faults: deque[Fault] = deque()
        self._faults_lock = threading.Lock()  # requests arrive on several threads at once
        self.in_flight = 0  # streams being answered right now
        self.most_in_flight = 0  # the most at once since the last reset
        self.chunk_delay_s = 0.0
        self.first_token_delay_s = 0.0
        self.keepalive_comments = False  # DeepSeek-style ": keep-alive" SSE comments between chunks
        self.hangups = 0  # streams the client closed before the end (what a provider sees of a Stop)
        self.reasoning_text = REASONING
        self.heard = HEARD  # what the transcription model hears in any recording that is a WAV with sound
        self.speech_requests: list[dict[str, Any]] = []  # every request to the speech model
        self.speech_down = False  # the speech model answers 500
        self.accepted_keys = {GOOD_KEY}
        self.keys_seen: list[str] = []  # the key of every request, in order (a visitor's own key, the host's)
        self.authorizations: list[str] = []  # the Authorization header of every request, as it came
        self.answer_tokens = 0  # when set: every answer goes on to this many tokens (unless max_tokens stops it)
        self.spent_tokens = 0  # the tokens of every usage reported (what a provider bills)
        self.batches = FakeBatches(self)  # files and batches (the Batch API)
        self.explicit_cache = ExplicitCache()  # DashScope's explicit context cache
        self._server = QuietServer(("127.0.0.1", port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def streamed(self) -> list[dict[str, Any]]:
        """The app's answers: the chat requests that asked for a stream, except its title calls (which stream
        too, and are known by their instruction)."""
        return [r for r in self.requests if r.get("stream") and not is_title_call(r)]

    def start(self) -> FakeProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def script(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def reset(self) -> None:
        self.requests.clear()
        self.faults.clear()
        self.chunk_delay_s = 0.0
        self.first_token_delay_s = 0.0
        self.keepalive_comments = False
        self.hangups = 0
        self.reasoning_text = REASONING
        self.heard = HEARD
        self.speech_requests.clear()
        self.speech_down = False
        self.most_in_flight = 0
        self.accepted_keys = {GOOD_KEY}
        self.keys_seen.clear()
        self.authorizations.clear()
        self.answer_tokens = 0
        self.spent_tokens = 0
        self.batches.reset()
        self.explicit_cache.reset()

    def bill(self, tokens: int) -> None:
        with self._faults_lock:
            self.spent_tokens += tokens

    def take_fault(self, body: dict[str, Any]) -> Fault | None:
        """The first queued fault meant for this request (any request, or one whose question has its text)."""
        with self._faults_lock:
            last_user = question_of(body.get("messages", []))
            text = text_of(last_user.get("content", ""))
            for fault in self.faults:
                if fault.when is None or fault.when in text:
                    self.faults.remove(fault)
                    return fault
            return None

    def answer_for(self, body: dict[str, Any]) -> str:
        answer = self._answer_for(body)
        return long_answer(answer, self.answer_tokens) if self.answer_tokens else answer

    def _answer_for(self, body: dict[str, Any]) -> str:
        if body["model"].startswith("qwen3-asr"):
            return transcript(body, self.heard)
        last_user = next((m for m in reversed(body["messages"]) if m["role"] == "user"), {"content": ""})
        text = text_of(last_user["content"])
        from_tools = tool_results_answer(body)
        if from_tools is not None:
            return from_tools + (f". {searched_answer(body)}" if body.get("enable_search") else "")
        if body.get("enable_search"):
            return searched_answer(body)
        if body.get("response_format", {}).get("type") == "json_object":
            return json.dumps({"reply": f"Echo: {text}", "turns": sum(m["role"] == "user" for m in body["messages"])},
                              ensure_ascii=False)
        images = sum(1 for p in last_user["content"] if p.get("type") == "image_url") if isinstance(last_user["content"], list) else 0
        suffix = f" (I see {images} image{'s' if images != 1 else ''})" if images else ""
        return f"Echo: {text}{suffix}. Meow~ This answer streams in several small pieces."

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                return self._authorized_as(UNAUTHORIZED)

            def _authorized_as(self, refusal: dict[str, Any]) -> bool:
                provider.authorizations.append(self.headers.get("Authorization") or "")
                key = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                provider.keys_seen.append(key)
                if key not in provider.accepted_keys:
                    self._json(401, refusal)
                    return False
                return True

            def do_GET(self) -> None:
                if provider.batches.serves(self.path):
                    return provider.batches.handle(self, "GET")
                if not self._authorized():
                    return
                if self.path.rstrip("/").endswith("/models"):
                    self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in MODELS]})
                else:
                    self._json(404, error_body("NotFound", "not found"))

            def do_POST(self) -> None:
                if provider.batches.serves(self.path):
                    return provider.batches.handle(self, "POST")
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/").endswith(NATIVE_PATH):
                    serve_native(self, provider, body)
                    return
                if self.path.rstrip("/").endswith(SPEECH_PATH):
                    serve_speech(self, provider, body)
                    return
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._json(404, error_body("NotFound", "not found"))
                    return
                provider.requests.append(body)
                if not self._authorized():
                    return
                fault = provider.take_fault(body)
                if fault and fault.kind == "status":
                    self._json(fault.status, fault.body or SERVER_ERROR, fault.headers)
                    return
                json_mode = body.get("response_format", {}).get("type") == "json_object"
                model = body.get("model", "")
                thinking = bool(body.get("enable_thinking")) or "thinking" in model or model.startswith("qwq")
                if json_mode and "json" not in json.dumps([text_of(m["content"]) for m in body["messages"]], ensure_ascii=False).lower():
                    self._json(400, NO_JSON_WORD)
                    return
                if json_mode and thinking:
                    self._json(400, JSON_WHILE_THINKING)
                    return
                if not body.get("stream"):
                    if STREAM_ONLY_MODEL.match(model):
                        self._json(400, STREAM_ONLY)
                        return
                    if body.get("enable_thinking") is not False and body.get("model", "").startswith("qwen3-"):
                        self._json(400, NON_STREAM_THINKING)
                        return
                    self._complete(body)
                    return
                with provider._faults_lock:
                    provider.in_flight += 1
                    provider.most_in_flight = max(provider.most_in_flight, provider.in_flight)
                try:
                    self._stream(body, thinking, fault)
                finally:
                    with provider._faults_lock:
                        provider.in_flight -= 1

            def _complete(self, body: dict[str, Any]) -> None:
                answer, cut = within_max_tokens(provider.answer_for(body), body.get("max_tokens"))
                prompt = sum(count_tokens(text_of(m["content"])) for m in body["messages"])
                provider.bill(prompt + count_tokens(answer))
                self._json(200, {
                    "id": f"chatcmpl-{uuid.uuid4()}", "object": "chat.completion", "created": int(time.time()),
                    "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "length" if cut else "stop",
                                 "message": {"role": "assistant", "content": answer}}],
                    "usage": {"prompt_tokens": prompt, "completion_tokens": count_tokens(answer),
                              "total_tokens": prompt + count_tokens(answer),
                              "prompt_tokens_details": provider.explicit_cache.details(body["messages"])},
                })

            def _send_event(self, payload: dict[str, Any] | str) -> None:
                data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
                self._send_raw(f"data: {data}\n\n".encode())

            def _send_raw(self, line: bytes) -> None:
                self.wfile.write(f"{len(line):X}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()

            def _stream(self, body: dict[str, Any], thinking: bool, fault: Fault | None) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk_id = f"chatcmpl-{uuid.uuid4()}"
                base = {"id": chunk_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": body["model"]}

                def delta(**fields: Any) -> dict[str, Any]:
                    return {**base, "choices": [{"index": 0, "delta": fields, "finish_reason": None, "logprobs": None}]}

                pieces: list[dict[str, Any]] = [delta(role="assistant", content=None, reasoning_content="")]
                if body.get("enable_search") and (body.get("search_options") or {}).get("enable_source"):
                    pieces[0] = {**pieces[0], "search_info": {"search_results": SEARCH_RESULTS}}
                reasoning = provider.reasoning_text if thinking else ""
                budget = body.get("thinking_budget")
                if reasoning and budget:
                    reasoning = " ".join(reasoning.split()[:budget])
                reasoning_pieces = text_pieces(" ".join(reasoning.split()) + " ") if reasoning.strip() else []
                pieces += [delta(content=None, reasoning_content=piece) for piece in reasoning_pieces if piece]
                question = text_of(question_of(body["messages"])["content"])
                calls = tool_calls_asked(body, question)
                answer = "" if calls else fault.text if fault and fault.kind == "answer" else provider.answer_for(body)
                answer, cut = within_max_tokens(answer, body.get("max_tokens"))
                pieces += [delta(content=piece) for piece in text_pieces(answer)]
                for index, (name, arguments) in enumerate(calls):  # as DashScope and OpenAI stream them
                    call_id = f"call_{uuid.uuid4().hex[:24]}"
                    pieces.append(delta(content=None, tool_calls=[{"index": index, "id": call_id, "type": "function",
                                                                   "function": {"name": name, "arguments": ""}}]))
                    pieces += [delta(content=None, tool_calls=[{"index": index, "function": {"arguments": arguments[i:i + 4]}}])
                               for i in range(0, len(arguments), 4)]
                finish = "tool_calls" if calls else "length" if cut or (fault and fault.kind == "length") else "stop"
                pieces.append({**base, "choices": [{"index": 0, "delta": {} if calls else {"content": ""},
                                                     "finish_reason": finish, "logprobs": None}]})
                delay = fault.delay_s if fault and fault.kind == "slow" else provider.chunk_delay_s
                try:
                    time.sleep(provider.first_token_delay_s)
                    for index, piece in enumerate(pieces):
                        if fault and fault.kind in ("cut", "truncate", "stream_error") and index == fault.after_chunks:
                            if fault.kind == "stream_error":
                                self._send_event(error_body("InternalError", "Stream interrupted by an upstream error."))
                                self.wfile.write(b"0\r\n\r\n")
                            elif fault.kind == "truncate":  # a proxy that ends the response: no finish, no [DONE]
                                self.wfile.write(b"0\r\n\r\n")
                            else:
                                self.connection.shutdown(socket.SHUT_RDWR)
                            self.close_connection = True
                            return
                        if fault and fault.kind == "not_object" and index == fault.after_chunks:
                            self._send_event('["not", "a", "chunk"]')
                        if provider.keepalive_comments:
                            self._send_raw(b": keep-alive\n\n")
                        self._send_event(piece)
                        time.sleep(delay)
                    if body.get("stream_options", {}).get("include_usage"):
                        prompt = sum(count_tokens(text_of(m["content"])) for m in body["messages"])
                        reasoning_tokens = len(reasoning.split())
                        completion = count_tokens(answer) + reasoning_tokens
                        provider.bill(prompt + completion)
                        self._send_event({**base, "choices": [], "usage": {
                            "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                            "completion_tokens_details": {"reasoning_tokens": reasoning_tokens} if thinking else None,
                            "prompt_tokens_details": provider.explicit_cache.details(body["messages"])}})
                    self._send_event("[DONE]")
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    provider.hangups += 1
                    self.close_connection = True

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fake DashScope provider (key: %s)" % GOOD_KEY)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds between chunks")
    parser.add_argument("--first-token-delay", type=float, default=0.0, help="seconds before each answer's first chunk")
    args = parser.parse_args()
    provider = FakeProvider(args.port).start()
    provider.chunk_delay_s = args.delay
    provider.first_token_delay_s = args.first_token_delay
    print(provider.base_url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
