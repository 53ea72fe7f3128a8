"""The CPU a streamed answer costs Atri per chunk, read two ways from the same server in the same run:
  typed     the SDK's ChatCompletionChunk, dumped back to a dict (how Atri read streams until 2026-12-03);
  as sent   the JSON object the provider sent (atri.client.stream_chunks: the SDK's post with cast_to=object).
The fake DashScope server streams a ~300-chunk answer, a chunk every 10 ms, from a process of its own (in
this one it would share the interpreter lock with what is measured); the CPU is this thread's own
(time.thread_time), alternating the two ways, medians. On two cores shared with the embedded model, this
CPU is taken from the model.

    .venv/bin/python -m bench.chunk_cpu [--runs 10]
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from atri.client import make_client, request_body, stream_chunks
from atri.providers import catalogue
from atri.settings import Connection, Settings
from bench.batch import start_fake
from tests.fake_provider import GOOD_KEY

QUESTION = " ".join(f"word{i}" for i in range(300))  # echoed back a word per chunk
CHUNK_EVERY_S = 0.01  # one at a time, as a model's tokens come (at once, reads would take many per call)


def typed_chunks(conn: Connection, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    body = request_body(kwargs)
    stream = make_client(conn, conn.timeout_s).chat.completions.create(
        model=body.pop("model"), messages=[], stream=True, extra_body=body)
    for chunk in stream:
        yield chunk.model_dump(exclude_none=True)


def cpu_per_chunk(read: Callable[[Connection, dict[str, Any]], Iterator[dict[str, Any]]], conn: Connection,
                  kwargs: dict[str, Any]) -> float:
    started, chunks = time.thread_time(), sum(1 for _ in read(conn, kwargs))
    return (time.thread_time() - started) / chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    server, base_url = start_fake("--delay", str(CHUNK_EVERY_S))
    try:
        provider = catalogue()["dashscope"]
        conn = Settings({"DASHSCOPE_API_KEY": GOOD_KEY, "DASHSCOPE_BASE_URL": base_url}).connection(provider)
        kwargs = {"model": "qwen-plus", "messages": [{"role": "user", "content": QUESTION}], "stream": True,
                  "extra_body": {"enable_thinking": False}}
        ways = {"typed (SDK model, dumped)": typed_chunks, "as sent (atri.client)": stream_chunks}
        measured: dict[str, list[float]] = {name: [] for name in ways}
        for run in range(args.runs + 1):
            for name in (list(ways) if run % 2 == 0 else list(ways)[::-1]):
                cost = cpu_per_chunk(ways[name], conn, kwargs)
                if run:  # the first warms up
                    measured[name].append(cost)
        for name, costs in measured.items():
            print(f"{name:28s} {statistics.median(costs) * 1e6:7.0f} us of CPU per chunk")
        typed, as_sent = (statistics.median(costs) for costs in measured.values())
        print(f"as sent / typed: {as_sent / typed:.0%}")
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
