"""What DashScope's explicit context cache saves (issue 31): a 10-turn chat about a document of 3,000 tokens,
sent whole with every question as Atri sends whole documents (atri.context: in the system message after the
persona), once with the explicit cache marker and once without, against the fake DashScope server (which
writes and hits explicit cache blocks as Model Studio documents them). The input cost of each run comes from
the usage the server reported and the price table (atri/data/prices.toml, qwen3-max).

    .venv/bin/python -m bench.cache_savings

Without the marker the fake reports no cache at all: DashScope's implicit cache (hits at 20 %, not
guaranteed) would take something off that run too, so the real ratio is somewhere above the one printed.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from atri.calls import run_turn
from atri.context import ContextSettings, input_budget, plan_context
from atri.context.plan import DocumentContext
from atri.documents import Excerpt
from atri.local import free_port
from atri.messages import ChatOptions, Message, Usage
from atri.pricing import Price, format_cost, price_table, request_cost
from atri.providers import catalogue
from atri.request import build_request
from atri.settings import Settings
from atri.tokens import rough_count
from tests.fake_provider import GOOD_KEY, count_tokens

ROOT = Path(__file__).resolve().parents[1]
MODEL = "qwen3-max"
TURNS = 10
DOCUMENT_TOKENS = 3_000  # as the fake counts them
PERSONA = "You are a careful assistant. Answer from the document below and cite its pages."
SENTENCE = "The Hangzhou office moved to the West Lake campus in spring, and the canteen opens at seven. "


def start_fake() -> tuple[subprocess.Popen, str]:
    """The fake DashScope server in a process of its own; and its URL."""
    server = subprocess.Popen([sys.executable, "-m", "tests.fake_provider", "--port", str(free_port()), "--delay", "0"],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    return server, server.stdout.readline().strip()  # printed once it listens


def document() -> DocumentContext:
    text = (SENTENCE * (DOCUMENT_TOKENS * 3 // len(SENTENCE) + 1))[:DOCUMENT_TOKENS * 3]
    assert count_tokens(text) == DOCUMENT_TOKENS
    return DocumentContext([Excerpt("handbook.pdf", 1, text, 1.0, None)], whole=True)


def chat(base_url: str, cached: bool) -> list[Usage]:
    """Each turn's usage as the server reported it: the thread grows, the document goes whole each time."""
    provider = catalogue()["dashscope"]
    model = provider.model(MODEL)
    conn = Settings({"DASHSCOPE_API_KEY": GOOD_KEY, "DASHSCOPE_BASE_URL": base_url}).connection(provider)
    options = ChatOptions("dashscope", MODEL, system_prompt=PERSONA)
    thread: list[Message] = []
    usages = []
    for number in range(1, TURNS + 1):
        thread.append(Message("user", f"Question {number} ({'cached' if cached else 'plain'} run): what does page 1 say?"))
        context = plan_context(thread, ContextSettings(), PERSONA, input_budget(model), rough_count, documents=document())
        plan = build_request(context.sent, replace(options, system_prompt=context.system_prompt), model, provider,
                             stable_prefix=context.stable_prefix if cached else "", count=rough_count)
        *_, turn = run_turn(conn, plan, count=rough_count)
        assert turn.error is None and turn.usage is not None, turn.error
        usages.append(turn.usage)
        thread.append(Message("assistant", turn.content))
    return usages


def input_cost(price: Price, usages: list[Usage]) -> float:
    return sum(request_cost(price, replace(usage, completion_tokens=0)) for usage in usages)


def main() -> None:
    price = price_table()[MODEL]
    server, base_url = start_fake()
    try:
        plain, cached = chat(base_url, cached=False), chat(base_url, cached=True)
    finally:
        server.terminate()
        server.wait(5)
    written = sum(u.cache_written_tokens for u in cached)
    hit = sum(u.cached_tokens for u in cached)
    print(f"{TURNS} turns, a {DOCUMENT_TOKENS:,}-token document sent whole each turn, {MODEL} at "
          f"{price.tier_for(0).input} {price.currency}/M input")
    print(f"input tokens: {sum(u.prompt_tokens for u in plain):,} without the marker, "
          f"{sum(u.prompt_tokens for u in cached):,} with it (cache: wrote {written:,} / hit {hit:,})")
    without, with_cache = input_cost(price, plain), input_cost(price, cached)
    print(f"input cost without explicit caching: {format_cost(without, price.currency)}")
    print(f"input cost with explicit caching:    {format_cost(with_cache, price.currency)}")
    print(f"ratio: {with_cache / without:.2f} (input cost {1 - with_cache / without:.0%} lower)")


if __name__ == "__main__":
    main()
