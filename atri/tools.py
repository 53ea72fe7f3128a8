"""Tools a model can call: what each one is (a JSON schema for the request), running a call, and the built-ins.

A tool is a name, a description, the JSON schema of its arguments and a function from those arguments
to text. A `Toolbox` holds the tools of one answer and runs the calls the model asks for: arguments that
are not a JSON object, an unknown tool or a tool that raises become an error text the model reads (and
the visitor sees in the step), never a failed answer.
"""
from __future__ import annotations

import ast
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import simpleeval

from .isolation import WorkTooHeavy, run_isolated
from .tool_images import Pictured, StepImage, checked_images
from .webfetch import FetchRefused, fetch_page
from .websearch import SearchHit, hit_source, hits_for_model, number_hits, searxng_hits

MAX_RESULT_CHARS = 20_000  # what one call sends back to the model (and stores)
MAX_ARGUMENT_CHARS = 20_000

CALCULATOR = "calculator"
CURRENT_TIME = "current_time"
FETCH_PAGE = "fetch_page"
WEB_SEARCH = "web_search"
BUILTINS = (CALCULATOR, CURRENT_TIME, FETCH_PAGE)  # the ones a visitor switches on and off


@dataclass(frozen=True)
class Found:
    """What a search tool found. The Toolbox numbers the hits after the sources the answer already cites
    before the model reads them, so that its [n] and the sources listed under the answer agree."""

    hits: tuple[SearchHit, ...]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[dict[str, Any]], str | Found | Pictured]
    source: str = "built-in"  # or the MCP server it comes from
    asks_first: bool = False  # runs only once the visitor approves the call (atri.approval)

    def schema(self) -> dict[str, Any]:
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


@dataclass(frozen=True)
class ToolCall:
    """One call as the model streamed it (arguments are the JSON text, possibly malformed)."""

    id: str
    name: str
    arguments: str

    def as_sent(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class ToolStep:
    """One call run: what was asked, what came back, how long it took. `round`: which request asked for it."""

    id: str
    name: str
    arguments: str
    result: str = ""
    error: str | None = None
    seconds: float = 0.0
    round: int = 0
    sources: list[dict[str, Any]] = field(default_factory=list)  # a search's hits, numbered; stored as the answer's
    declined: str | None = None  # not run: "denied" by the visitor, or "timed_out" waiting for them (atri.approval)
    images: list[StepImage] = field(default_factory=list)  # the images it returned, checked (atri.tool_images)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments, "result": self.result,
                "error": self.error, "seconds": self.seconds, "round": self.round,
                **({"declined": self.declined} if self.declined else {}),
                **({"images": [image.to_dict() for image in self.images]} if self.images else {})}


class ToolError(Exception):
    """A tool's own failure, told to the model as it is."""


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit:,} more characters)"


@dataclass
class Toolbox:
    tools: list[Tool] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.tools)

    def schemas(self) -> list[dict[str, Any]]:
        return [tool.schema() for tool in self.tools]

    def find(self, name: str) -> Tool | None:
        return next((tool for tool in self.tools if tool.name == name), None)

    def run(self, call: ToolCall, round_: int = 0, cited: Sequence[dict[str, Any]] = ()) -> ToolStep:
        """`cited`: the sources the answer has so far (a search's hits are numbered after them)."""
        step = ToolStep(call.id, call.name, _clip(call.arguments, MAX_ARGUMENT_CHARS), round=round_)
        started = time.perf_counter()
        try:
            tool = self.find(call.name)
            if tool is None:
                raise ToolError(f"there is no tool named {call.name!r}")
            try:
                arguments = json.loads(call.arguments or "{}")
            except json.JSONDecodeError as error:
                raise ToolError(f"the arguments are not valid JSON ({error.msg})") from None
            if not isinstance(arguments, dict):
                raise ToolError("the arguments must be a JSON object")
            step.result, step.sources, step.images = _read(tool.run(arguments), cited)
        except Exception as error:  # noqa: BLE001 - any failure of a tool is the model's to read, not the answer's end
            step.error = _clip(f"{type(error).__name__}: {error}" if not isinstance(error, (ToolError, FetchRefused))
                               else str(error), 2_000)
        step.seconds = time.perf_counter() - started
        return step


def _read(output: str | Found | Pictured, cited: Sequence[dict[str, Any]],
          ) -> tuple[str, list[dict[str, Any]], list[StepImage]]:
    """A tool's output as the model reads it, the numbered sources a search's hits become, and the images it
    returned within the limits (those left out are named at the end of its text)."""
    if isinstance(output, Pictured):
        images, notes = checked_images(output.images)
        return _clip("\n".join([output.text, *notes]), MAX_RESULT_CHARS), [], images
    if not isinstance(output, Found):
        return _clip(output, MAX_RESULT_CHARS), [], []
    numbered = number_hits(cited, output.hits)
    return (_clip(hits_for_model(numbered), MAX_RESULT_CHARS), [hit_source(number, hit) for number, hit in numbered],
            [])


def result_for_model(step: ToolStep) -> str:
    return f"Error: {step.error}" if step.error is not None else step.result


# --- the built-ins -----------------------------------------------------------------------------------

MAX_COMBINATORIAL_N = 10_000  # factorial(10**7) would hold a worker for minutes
MAX_INTEGER_BITS = 15_000  # about 4,500 digits: Python prints no integer longer than 4,300 anyway
MAX_EXPRESSION_CHARS = 1_000


def _bounded(function: Callable[..., Any]) -> Callable[..., Any]:
    def checked(*arguments: Any) -> Any:
        if any(isinstance(value, (int, float)) and abs(value) > MAX_COMBINATORIAL_N for value in arguments):
            raise ToolError(f"{function.__name__} is limited to numbers up to {MAX_COMBINATORIAL_N:,}")
        return function(*arguments)
    return checked


def _too_big(bits: int) -> None:
    if bits > MAX_INTEGER_BITS:
        raise ToolError(f"the result would have about {bits * 0.30103:,.0f} digits; the limit is "
                        f"{MAX_INTEGER_BITS * 0.30103:,.0f}")


def _both_integers(left: Any, right: Any) -> bool:
    return isinstance(left, int) and isinstance(right, int)


def _power(base: Any, exponent: Any) -> Any:
    """`**`, its result's size known before it is computed (3999999**3999999 took a minute of one core)."""
    if _both_integers(base, exponent) and exponent > 0 and abs(base) > 1:
        _too_big((abs(base).bit_length() - 1) * exponent)
    return base ** exponent


def _times(left: Any, right: Any) -> Any:
    if _both_integers(left, right):
        _too_big(abs(left).bit_length() + abs(right).bit_length())
    return simpleeval.safe_mult(left, right)


def _shift(value: Any, places: Any) -> Any:
    if _both_integers(value, places):
        _too_big(abs(value).bit_length() + places)
    return value << places


_MATH_FUNCTIONS: dict[str, Callable[..., Any]] = {
    name: getattr(math, name) for name in ("sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "log",
                                           "log10", "log2", "exp", "floor", "ceil", "gcd", "degrees", "radians", "hypot")
} | {name: _bounded(getattr(math, name)) for name in ("factorial", "comb", "perm")} | {
    "abs": abs, "round": round, "min": min, "max": max}
_OPERATORS = simpleeval.DEFAULT_OPERATORS | {ast.Pow: _power, ast.Mult: _times, ast.LShift: _shift}


def calculate(expression: str) -> str:
    """A safe arithmetic evaluator (simpleeval: no attribute access, no calls but these), whose integers
    are bounded in size before each operation. Runs in the caller's process: the tool runs it isolated."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    evaluator = simpleeval.SimpleEval(operators=_OPERATORS, functions=_MATH_FUNCTIONS,
                                      names={"pi": math.pi, "e": math.e, "tau": math.tau})
    try:
        value = evaluator.eval(expression.replace("^", "**"))
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except ToolError:
        raise
    except (simpleeval.InvalidExpression, SyntaxError, TypeError, ValueError, OverflowError) as error:
        raise ToolError(f"cannot evaluate {expression!r}: {error}") from None
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    try:
        return str(value)
    except ValueError:  # Python refuses to print integers of more than 4300 digits
        raise ToolError("the result has more than 4300 digits") from None


def calculate_isolated(expression: str) -> str:
    """`calculate` in a worker process, so that a case no bound foresaw costs a worker, not the server."""
    try:
        return run_isolated(calculate, expression)
    except WorkTooHeavy as error:
        raise ToolError(f"the calculation went past its {error.limit} limit and was stopped") from None


def _calculator() -> Tool:
    return Tool(CALCULATOR, "Evaluate an arithmetic expression exactly (+ - * / // % ** and sqrt, sin, cos, log, "
                "exp, factorial, pi, e…). Use it for any calculation instead of computing in your head.",
                {"type": "object", "properties": {"expression": {"type": "string", "description": "e.g. 2**10 / 3"}},
                 "required": ["expression"]},
                lambda arguments: calculate_isolated(str(arguments.get("expression", ""))))


def zone_of(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def now_in(zone_name: str, now: datetime | None = None) -> str:
    zone = zone_of(zone_name)
    moment = (now or datetime.now(UTC)).astimezone(zone or UTC)
    return json.dumps({"datetime": moment.isoformat(timespec="seconds"), "weekday": moment.strftime("%A"),
                       "timezone": zone_name if zone else "UTC"})


def _current_time(visitor_zone: str) -> Tool:
    return Tool(CURRENT_TIME, "The current date, time and weekday in the user's time zone (or another IANA zone).",
                {"type": "object", "properties": {"timezone": {
                    "type": "string", "description": "an IANA zone such as Asia/Shanghai; omit for the user's own"}}},
                lambda arguments: now_in(str(arguments.get("timezone") or visitor_zone)))


def _fetch(arguments: dict[str, Any]) -> str:
    page = fetch_page(str(arguments.get("url", "")))
    header = f"URL: {page.url}\nStatus: {page.status}\n"
    text = page.text if len(page.text) <= 20_000 else page.text[:20_000]
    cut = "\n[the page was longer; only its start is shown]" if page.truncated or len(page.text) > 20_000 else ""
    return f"{header}\n{text}{cut}"


def _fetch_page() -> Tool:
    return Tool(FETCH_PAGE, "Fetch a public web page (http or https) and return its readable text.",
                {"type": "object", "properties": {"url": {"type": "string", "description": "the page's full URL"}},
                 "required": ["url"]}, _fetch)


def web_search_tool(searxng_url: str) -> Tool:
    """Search through the host's SearXNG, for models whose provider does not search by itself."""
    return Tool(WEB_SEARCH, "Search the web for current information. Returns numbered results (title, URL, "
                "snippet); cite them in the answer as [n].",
                {"type": "object", "properties": {"query": {"type": "string", "description": "what to search for"}},
                 "required": ["query"]},
                lambda arguments: Found(tuple(searxng_hits(searxng_url, str(arguments.get("query", ""))))))


def builtin_tools(names: Iterable[str], visitor_zone: str = "") -> list[Tool]:
    """The built-in tools by name, in a stable order (unknown names are skipped)."""
    wanted = set(names)
    made = {CALCULATOR: _calculator, CURRENT_TIME: lambda: _current_time(visitor_zone), FETCH_PAGE: _fetch_page}
    return [made[name]() for name in BUILTINS if name in wanted]
