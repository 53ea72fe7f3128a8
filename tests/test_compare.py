"""Several models answer one question at once, through the async client, against the fake provider."""
import asyncio
import time

from atri.calls import Target
from atri.compare import compare
from atri.messages import ChatOptions, Message
from atri.providers import catalogue
from atri.settings import Settings
from tests.fake_provider import GOOD_KEY

DASHSCOPE = catalogue()["dashscope"]


def target(fake, model, key=GOOD_KEY):
    conn = Settings({"DASHSCOPE_API_KEY": key, "DASHSCOPE_BASE_URL": fake.base_url}).connection(DASHSCOPE)
    return Target(conn, DASHSCOPE.model(model))


def test_answers_stream_at_the_same_time(fake):
    fake.chunk_delay_s = 0.1
    targets = [target(fake, m) for m in ("qwen3-max", "qwen-plus", "qwq-plus")]
    updates: list[int] = []
    started = time.perf_counter()
    turns = asyncio.run(compare(targets, Message("user", "你好"), ChatOptions("dashscope", "", system_prompt="hi"),
                                lambda index, turn: updates.append(index)))
    wall = time.perf_counter() - started
    longest = max(t.ended_at - t.started for t in turns)
    assert all(t.content.startswith("Echo: 你好") and t.finish_reason == "stop" for t in turns)
    assert turns[2].reasoning, "qwq-plus always thinks"
    assert wall < 1.5 * longest, f"answers ran one after another ({wall:.1f}s for a {longest:.1f}s answer)"
    assert updates.index(1) < len(updates) - updates[::-1].index(0) - 1, "updates interleave"
    assert {r["model"] for r in fake.streamed} == {"qwen3-max", "qwen-plus", "qwq-plus"}


def test_one_failing_model_does_not_spoil_the_others(fake):
    targets = [target(fake, "qwen3-max"), target(fake, "qwen-plus", key="sk-wrong")]
    good, bad = asyncio.run(compare(targets, Message("user", "hi"), ChatOptions("dashscope", "")))
    assert good.error is None and good.content
    assert bad.error.kind == "auth" and not bad.content
