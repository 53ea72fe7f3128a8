"""Tokens/s and time to first token of the embedded model: through Atri's client path vs llama.cpp direct.

    python bench/local_speed.py [--runs 3] [--max-tokens 128] [--threads N]

Prints one table. The app path is: request building -> openai SDK -> HTTP/SSE -> llama.cpp server ->
chunk parsing -> Turn. The raw path is llama_cpp.Llama.create_chat_completion(stream=True) in-process.
Tokens are counted with the model's own vocabulary in both, over the same prompt and settings.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atri.local import BUNDLED_MODEL_ID, assemble_model, cache_dir, default_threads, gguf_token_counter, start_engine  # noqa: E402
from atri.messages import ChatOptions, Message  # noqa: E402
from atri.providers import LOCAL, catalogue  # noqa: E402
from atri.request import build_request  # noqa: E402
from atri.settings import Connection  # noqa: E402
from atri.turn import run_turn  # noqa: E402

PROMPT = "用中文写一段关于猫咪晒太阳的小故事,大约一百字。"
SYSTEM = "你是一只可爱的猫娘,名字叫Atri,会软软地对用户喵喵叫"


def system_prompt(run: int) -> str:
    """Different from the first token on, so no run reuses the previous run's prompt cache."""
    return f"[{run}] {SYSTEM}"


def app_path(model_path: Path, runs: int, max_tokens: int, threads: int | None) -> list[tuple[float, float]]:
    provider = catalogue()[LOCAL]
    model = provider.models[0]
    count = gguf_token_counter(str(model_path))
    engine = start_engine(model_path, BUNDLED_MODEL_ID, threads=threads)
    results = []
    try:
        conn = Connection(provider, engine.base_url, "not-needed")
        for run in range(runs + 1):  # the first run warms up and is dropped
            options = ChatOptions(LOCAL, BUNDLED_MODEL_ID, temperature=0.0, system_prompt=system_prompt(run))
            plan = build_request([Message("user", PROMPT)], options, model, provider)
            plan.kwargs["max_tokens"] = max_tokens
            *_, turn = run_turn(conn, plan, count=count)
            ttft = turn.first_token_at - turn.started
            tokens = count(turn.content)
            results.append((ttft, (tokens - 1) / (turn.ended_at - turn.first_token_at)))
    finally:
        engine.stop()
    return results[1:]


def raw_path(model_path: Path, runs: int, max_tokens: int, threads: int | None) -> list[tuple[float, float]]:
    from llama_cpp import Llama

    llama = Llama(model_path=str(model_path), n_ctx=4096, n_threads=threads or default_threads(), verbose=False)
    count = gguf_token_counter(str(model_path))
    results = []
    for run in range(runs + 1):
        messages = [{"role": "system", "content": system_prompt(run)}, {"role": "user", "content": PROMPT}]
        started = time.perf_counter()
        first = None
        text = []
        for chunk in llama.create_chat_completion(messages, stream=True, max_tokens=max_tokens, temperature=0.0):
            piece = chunk["choices"][0]["delta"].get("content")
            if piece:
                first = first or time.perf_counter()
                text.append(piece)
        ended = time.perf_counter()
        results.append((first - started, (count("".join(text)) - 1) / (ended - first)))
    return results[1:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    model_path = assemble_model(cache_dir())
    app = app_path(model_path, args.runs, args.max_tokens, args.threads)
    raw = raw_path(model_path, args.runs, args.max_tokens, args.threads)
    app_ttft, app_tps = (statistics.median(v) for v in zip(*app))
    raw_ttft, raw_tps = (statistics.median(v) for v in zip(*raw))
    print(f"embedded model, {args.runs} runs (median), max_tokens={args.max_tokens}, threads={args.threads or default_threads()}")
    print(f"{'path':<28}{'tokens/s':>10}{'TTFT s':>10}")
    print(f"{'Atri client (HTTP/SSE)':<28}{app_tps:>10.1f}{app_ttft:>10.3f}")
    print(f"{'llama.cpp in-process':<28}{raw_tps:>10.1f}{raw_ttft:>10.3f}")
    print(f"{'ratio app/raw':<28}{app_tps / raw_tps:>10.1%}{app_ttft / raw_ttft:>10.2f}x")


if __name__ == "__main__":
    main()
