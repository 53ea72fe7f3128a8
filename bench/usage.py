"""Usage page on a big database: 100,000 stored answers (with their questions) over 90 days and five
models, then the time to add them up (Store.usage_report, in SQL) and to open the Usage page (AppTest,
the page drawn whole: charts, tables, downloads). The goal: under 1 s.

    .venv/bin/python -m bench.usage [--postgres | --database-url URL]   (default: a SQLite file in a temp dir)
"""
from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from atri.store import Store
from atri.store.rows import ConversationRow, MessageRow
from atri.usage import DateRange, usage_report

ROOT = Path(__file__).resolve().parents[1]
ANSWERS = 100_000
PER_CONVERSATION = 50
MODELS = {"qwen3-max": 0.012, "qwen-plus": 0.002, "qwen-flash": 0.0004, "qwen3-vl-plus": 0.004, "deepseek-chat": 0.003}
OWNER = "anon:bench-visitor"
# Every row names every column: an executemany takes its columns from the first row
NO_FACTS = dict.fromkeys(("provider", "model", "prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens",
                          "usage_estimated", "cost", "currency", "ttft_s", "total_s", "error_kind"))


def fill(store: Store) -> None:
    random.seed(10)
    start = datetime.now(UTC) - timedelta(days=90)
    conversations, messages = [], []
    for c in range(ANSWERS // PER_CONVERSATION):
        cid = f"bench-{c}"
        owner = OWNER if c % 2 == 0 else f"anon:other-{c % 7}"  # half of them the visitor's
        stamp = start + timedelta(days=90 * c / (ANSWERS // PER_CONVERSATION))
        conversations.append({"id": cid, "owner": owner, "title": f"对话 {c}", "settings": {}, "version": 0,
                              "created_at": stamp, "updated_at": stamp})
        for position in range(PER_CONVERSATION):
            model = random.choice(list(MODELS))
            error = random.random() < 0.03
            at = stamp + timedelta(minutes=position)
            messages.append({**NO_FACTS, "conversation_id": cid, "position": 2 * position, "active": True,
                             "role": "user", "content": "问题", "data": {}, "created_at": at})
            prompt, completion = random.randint(20, 4000), random.randint(10, 1500)
            messages.append({
                "conversation_id": cid, "position": 2 * position + 1, "active": True, "role": "assistant",
                "content": "" if error else "回答", "data": {"facts": {}}, "created_at": at, "provider": "dashscope",
                "model": model, "prompt_tokens": None if error else prompt, "completion_tokens": None if error else completion,
                "reasoning_tokens": 0, "cached_tokens": 0, "usage_estimated": False,
                "cost": None if error else (prompt + 3 * completion) * MODELS[model] / 1000, "currency": "CNY",
                "ttft_s": None if error else random.lognormvariate(-0.7, 0.5),
                "total_s": None if error else random.lognormvariate(1.0, 0.6),
                "error_kind": random.choice(["rate_limit", "timeout", "server"]) if error else None})
    with store.engine.begin() as connection:
        connection.execute(ConversationRow.__table__.insert(), conversations)
        for first in range(0, len(messages), 20_000):
            connection.execute(MessageRow.__table__.insert(), messages[first:first + 20_000])


def timed(label: str, work) -> float:
    work()  # a first run warms the caches, as a page that was opened before
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    print(f"{label}: {seconds:.3f} s")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL server (tests/postgres.py)")
    args = parser.parse_args()
    if args.postgres:
        from tests.postgres import postgres_server

        with postgres_server() as url:
            run(url)
    else:
        run(args.database_url)


def run(database_url: str) -> None:
    folder = tempfile.mkdtemp(prefix="atri-usage-bench-")
    url = database_url or f"sqlite:///{folder}/atri.db"
    store = Store(url)
    started = time.perf_counter()
    fill(store)
    print(f"stored {ANSWERS:,} answers and their questions in {time.perf_counter() - started:.1f} s ({store.engine.dialect.name})")
    if store.engine.dialect.name == "postgresql":  # what autovacuum does a little later on a real server
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))
    last_30 = DateRange.last(30)
    report = usage_report(store, OWNER, last_30)
    assert report.prompt_tokens > 0 and len(report.by_model) == len(MODELS) and report.errors, "the data are there"
    print(f"the visitor's last 30 days: {report.answers:,} answers, {report.prompt_tokens:,} tokens in, "
          f"{len(report.by_day)} day × model × currency rows")
    timed("usage_report, one visitor, last 30 days", lambda: usage_report(store, OWNER, last_30))
    timed("usage_report, one visitor, all 90 days", lambda: usage_report(store, OWNER, DateRange.last(91)))
    timed("usage_report, everyone (admin), all 90 days", lambda: usage_report(store, None, DateRange.last(91)))
    store.engine.dispose()

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["ATRI_DATABASE_URL"] = url

    def open_page() -> None:
        at = AppTest.from_file(str(ROOT / "app_pages" / "4_Usage.py"), default_timeout=60)
        at.session_state["owner"] = OWNER
        at.run()
        assert not at.exception and at.metric, at.exception

    st.cache_resource.clear()
    seconds = timed("Usage page opened (AppTest, one visitor, last 30 days)", open_page)
    print(f"page open: {seconds:.2f} s (goal < 1 s)")


if __name__ == "__main__":
    main()
