"""Estimated cost of a request, from per-model prices in a data file (tiered by input length)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import tomllib

from .messages import AnswerFacts, Usage

DEFAULT_PRICES = Path(__file__).parent / "data" / "prices.toml"
SYMBOLS = {"CNY": "¥", "USD": "$"}
PER = 1_000_000


@dataclass(frozen=True)
class Tier:
    up_to: int  # input tokens of the request
    input: float
    output: float
    output_thinking: float | None = None


@dataclass(frozen=True)
class Price:
    currency: str
    tiers: tuple[Tier, ...]
    cached_share: float = 1.0  # an implicit cache hit, as a share of the input price
    explicit_cached_share: float | None = None  # an explicit cache hit (None: as an implicit one)
    cache_write_share: float = 1.0  # input written to an explicit cache
    batch_share: float | None = None  # a request sent through the provider's Batch API (None: it has none)
    search_fee: float = 0.0  # one web search the provider ran for a request (DashScope bills each)

    def tier_for(self, prompt_tokens: int) -> Tier:
        for tier in self.tiers:
            if prompt_tokens <= tier.up_to:
                return tier
        return self.tiers[-1]


def _read(path: Path) -> dict[str, Price]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    search = data.get("web_search", {})
    return {model: Price(raw["currency"], tuple(Tier(**t) for t in raw["tiers"]), raw.get("cached_share", 1.0),
                         raw.get("explicit_cached_share"), raw.get("cache_write_share", 1.0),
                         raw.get("batch_share"), _search_fee(search, raw))
            for model, raw in data.get("models", {}).items()}


def _search_fee(search: dict, model: dict) -> float:
    """The model's own search fee, or the file's `[web_search]` one when it is in the model's currency."""
    if "search_fee" in model:
        return float(model["search_fee"])
    return float(search.get("per_search", 0.0)) if search.get("currency") == model["currency"] else 0.0


@cache
def price_table(override: str = "") -> dict[str, Price]:
    """The bundled prices, with the entries of the file named by ATRI_PRICES_FILE replacing them."""
    prices = _read(DEFAULT_PRICES)
    if override:
        prices.update(_read(Path(override).expanduser()))
    return prices


def request_cost(price: Price, usage: Usage, thought: bool = False, searches: int | None = None) -> float:
    """`searches`: the web searches the provider ran for it, each billed at the price's search fee."""
    tier = price.tier_for(usage.prompt_tokens)
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    written = min(usage.cache_written_tokens, usage.prompt_tokens - cached)
    hit_share = price.explicit_cached_share if usage.cache_explicit and price.explicit_cached_share is not None \
        else price.cached_share
    output_price = tier.output_thinking if thought and tier.output_thinking is not None else tier.output
    return ((usage.prompt_tokens - cached - written) * tier.input + cached * tier.input * hit_share
            + written * tier.input * price.cache_write_share + usage.completion_tokens * output_price) / PER \
        + (searches or 0) * price.search_fee


def cache_saving(price: Price, usage: Usage, thought: bool = False) -> float:
    """What the provider's cache took off this request's cost (negative when writing it cost more than it
    saved yet: the next hits pay it back)."""
    uncached = replace(usage, cached_tokens=0, cache_written_tokens=0)
    return request_cost(price, uncached, thought) - request_cost(price, usage, thought)


def batch_cost(price: Price, usage: Usage) -> float:
    """What a request answered through the Batch API cost: its batch share of the real-time price, with no
    cache discount (the Batch API applies none)."""
    uncached = replace(usage, cached_tokens=0, cache_written_tokens=0)
    return request_cost(price, uncached, usage.reasoning_tokens > 0) * (price.batch_share or 1.0)


def answer_cost(facts: AnswerFacts, thought: bool, price: Price | None) -> tuple[float | None, str | None]:
    """What an answer cost: as stored with it (the prices of the day it was written), or, for an answer not
    saved yet, estimated at `price`."""
    if facts.cost is not None and facts.currency:
        return facts.cost, facts.currency
    if facts.usage is None or price is None:
        return None, None
    return request_cost(price, facts.usage, thought, facts.web_searches), price.currency


def answer_saving(facts: AnswerFacts, thought: bool, price: Price | None) -> float | None:
    """What the provider's cache took off an answer's cost: as stored with it, or, for an answer not saved yet,
    at `price`. None when the cache played no part (negative on the turn that wrote an explicit cache)."""
    if facts.saved is not None:
        return facts.saved
    usage = facts.usage
    if usage is None or price is None or not (usage.cached_tokens or usage.cache_written_tokens):
        return None
    return cache_saving(price, usage, thought)


def format_cost(amount: float, currency: str) -> str:
    symbol = SYMBOLS.get(currency, f"{currency} ")
    if amount == 0:
        return f"{symbol}0"
    return f"{symbol}{amount:.4f}" if amount < 1 else f"{symbol}{amount:,.2f}"


@dataclass
class Totals:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    estimated: bool = False
    cost: dict[str, float] | None = None  # by currency
    saved: dict[str, float] | None = None  # by the provider's cache, by currency (negative: writes not paid back)

    def add(self, usage: Usage, cost: float | None, currency: str | None, saved: float | None = None) -> None:
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.reasoning_tokens += usage.reasoning_tokens
        self.cached_tokens += usage.cached_tokens
        self.estimated = self.estimated or usage.estimated
        if cost is not None and currency:
            self.cost = self.cost or {}
            self.cost[currency] = self.cost.get(currency, 0.0) + cost
        if saved is not None and currency:
            self.saved = self.saved or {}
            self.saved[currency] = self.saved.get(currency, 0.0) + saved
