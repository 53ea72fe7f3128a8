"""Batch speed: 50 prompts against the fake DashScope server, each answer 0.5 s, one at a time and then
ten at a time, through the app's own run (atri.batch: AsyncOpenAI, a semaphore, the real SDK over HTTP).
The fake server runs in a process of its own, as a provider would (in this process it would share the
interpreter lock with the run it is measuring).

    .venv/bin/python -m bench.batch

The last line is `speedup: N.Nx` (the issue's goal: at least 8x).
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from atri.batch import BatchRun, run_sync
from atri.batch_plan import Variant, batch_spec
from atri.calls import Target
from atri.local import free_port
from atri.pricing import price_table
from atri.providers import catalogue
from atri.settings import Settings
from tests.fake_provider import GOOD_KEY

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = 50
ANSWER_S = 0.5


def start_fake(*options: str) -> tuple[subprocess.Popen, str]:
    """The fake DashScope server in a process of its own, with its command-line `options`; and its URL."""
    server = subprocess.Popen([sys.executable, "-m", "tests.fake_provider", "--port", str(free_port()), *options],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    return server, server.stdout.readline().strip()  # printed once it listens


def timed(base_url: str, concurrency: int) -> float:
    provider = catalogue()["dashscope"]
    conn = Settings({"DASHSCOPE_API_KEY": GOOD_KEY, "DASHSCOPE_BASE_URL": base_url}).connection(provider)
    target = Target(conn, provider.model("qwen-plus"), price_table().get("qwen-plus"))
    prompts = [(f"第 {i} 个问题:用一句话介绍杭州", {}) for i in range(PROMPTS)]
    spec = batch_spec("dashscope", "qwen-plus", prompts, Variant(temperature=0.7), concurrency=concurrency)
    started = time.perf_counter()
    view = run_sync(BatchRun("bench", spec, target))
    wall = time.perf_counter() - started
    assert view.totals.done == PROMPTS, f"{view.totals.failed} rows failed"
    return wall


def main() -> None:
    server, base_url = start_fake("--delay", "0", "--first-token-delay", str(ANSWER_S))
    try:
        one = timed(base_url, 1)
        print(f"{PROMPTS} prompts, {ANSWER_S} s each, concurrency 1:  {one:.2f} s")
        ten = timed(base_url, 10)
        print(f"{PROMPTS} prompts, {ANSWER_S} s each, concurrency 10: {ten:.2f} s")
    finally:
        server.terminate()
        server.wait(5)
    print(f"speedup: {one / ten:.1f}x")


if __name__ == "__main__":
    main()
