"""Faults, with real processes killed by SIGKILL and real replicas on one PostgreSQL (issue 34): a batch run
killed halfway keeps its finished rows and resumes with only the others; two replicas racing one conversation
never write two messages at one place nor answer one question twice; an answer whose replica died is marked
interrupted by a replica that lives, and counted on the Usage page. Migrations killed midway:
tests/test_migrations.py."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import text

import atri.answers
import atri.store.rows
from atri.answers import Answerer
from atri.batch import DONE, BatchRunner, load_run
from atri.calls import Target
from atri.messages import Message
from atri.pricing import price_table
from atri.providers import catalogue
from atri.settings import Settings
from atri.store import Store
from tests.conftest import ROOT
from tests.fake_provider import GOOD_KEY
from tests.test_answers import setup_for

DASHSCOPE = catalogue()["dashscope"]
ROWS = 30

BATCH_PROCESS = f"""
import sys, time
from atri.batch import BatchRunner
from atri.batch_plan import Variant, batch_spec
from atri.calls import Target
from atri.pricing import price_table
from atri.providers import catalogue
from atri.settings import Settings
from atri.store import Store

url, base_url = sys.argv[1:3]
dashscope = catalogue()["dashscope"]
connection = Settings({{"DASHSCOPE_API_KEY": "{GOOD_KEY}", "DASHSCOPE_BASE_URL": base_url}}).connection(dashscope)
target = Target(connection, dashscope.model("qwen-plus"), price_table().get("qwen-plus"))
prompts = [(f"row {{n}}", {{"text": f"row {{n}}"}}) for n in range({ROWS})]
run = BatchRunner(Store(url)).start("alice", batch_spec("dashscope", "qwen-plus", prompts, Variant(), concurrency=4), target)
print(run.id, flush=True)
time.sleep(600)
"""

ANSWER_PROCESS = """
import sys, time
from types import SimpleNamespace
import atri.answers
from atri.answers import Answerer
from atri.store import Store
from tests.test_answers import setup_for

atri.answers.HEARTBEAT_S = 0.2
url, base_url, cid = sys.argv[1:4]
Answerer(Store(url)).start("alice", cid, setup_for(SimpleNamespace(base_url=base_url)))
time.sleep(600)
"""


def spawn(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def kill(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(10) == -signal.SIGKILL


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def test_a_batch_run_killed_halfway_keeps_its_finished_rows_and_resumes_with_only_the_others(tmp_path, fake):
    url = f"sqlite:///{tmp_path / 'atri.db'}"
    fake.first_token_delay_s = 1.0  # 30 rows, 4 at a time: about 8 s in all
    store = Store(url)
    process = spawn(BATCH_PROCESS, url, fake.base_url)
    try:
        run_id = process.stdout.readline().strip()
        assert run_id, process.stderr.read()[-2000:]

        def saved_done() -> int:
            view = load_run(store, "alice", run_id)
            return view is not None and sum(row.status == DONE for row in view.rows) >= 4

        wait_for(saved_done, 20, "four finished rows saved while the run goes on")
    finally:
        kill(process)
    asked_before = len(fake.requests)

    runner = BatchRunner(Store(url))  # the next start: the run's process is gone
    assert [(run["id"], run["status"]) for run in store.batch_runs("alice")] == [(run_id, "interrupted")]
    saved = load_run(store, "alice", run_id)
    done = [row for row in saved.rows if row.status == DONE]
    assert 4 <= len(done) < ROWS and all(row.answer.startswith("Echo: row ") for row in done)

    fake.first_token_delay_s = 0.0
    connection = Settings({"DASHSCOPE_API_KEY": GOOD_KEY, "DASHSCOPE_BASE_URL": fake.base_url}).connection(DASHSCOPE)
    resumed = runner.resume("alice", saved, Target(connection, DASHSCOPE.model("qwen-plus"), price_table().get("qwen-plus")))
    assert resumed.wait(30) and resumed.saved.wait(10)
    asked_again = sorted(request["messages"][-1]["content"] for request in fake.requests[asked_before:])
    assert asked_again == sorted(row.prompt for row in saved.rows if row.status != DONE), "done rows are not paid twice"
    final = load_run(store, "alice", run_id)
    assert final.status == "done" and all(row.status == DONE for row in final.rows)
    assert all(row.answer.startswith(f"Echo: {row.prompt}") for row in final.rows)
    assert [run["id"] for run in store.batch_runs("alice")] == [run_id], "the same run, not a second one"


@pytest.fixture
def replicas(pg_url):
    """Two app processes' worth of storage and answer workers on one PostgreSQL, in this process."""
    engine = Store(pg_url).engine
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE conversations, batch_runs, quota_counters CASCADE"))
    pair = [Store(pg_url), Store(pg_url)]
    answerers = [Answerer(store) for store in pair]
    yield pair, answerers
    for answerer in answerers:
        answerer.close()


def at_once(*actions):
    """Run the actions in threads released together; their results in order."""
    barrier = threading.Barrier(len(actions))
    results: list = [None] * len(actions)

    def run(index: int) -> None:
        barrier.wait()
        results[index] = actions[index]()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_two_replicas_racing_one_conversation_never_share_a_place_nor_answer_a_question_twice(replicas, fake):
    (first, second), answerers = replicas
    cid = first.create_conversation("alice", "race")
    rounds = 50
    for n in range(rounds):
        at_once(*[lambda store=store, name=name, n=n: store.append("alice", cid, Message("user", f"from the {name}, round {n}"))
                  for store, name in ((first, "first"), (second, "second"))])
        lives = at_once(*[lambda answerer=answerer: answerer.start("alice", cid, setup_for(fake))
                          for answerer in answerers])
        for live in lives:
            assert live.done.wait(20)

    with first.engine.connect() as connection:
        places = connection.execute(text("SELECT position, role FROM messages WHERE conversation_id = :c AND active "
                                         "ORDER BY position"), {"c": cid}).all()
    assert [position for position, _ in places] == list(range(3 * rounds)), "one message at each place, none skipped"
    assert Counter(role for _, role in places) == {"user": 2 * rounds, "assistant": rounds}
    assert len(fake.streamed) == rounds, "each question answered by one replica only"
    thread = second.thread("alice", cid)
    assert all(item.message.content.startswith("Echo: from the") for item in thread if item.message.role == "assistant")


def test_an_answer_whose_replica_died_is_marked_interrupted_by_the_other_and_counted(replicas, pg_url, fake,
                                                                                      monkeypatch):
    (survivor, _), _ = replicas  # their answer workers heartbeat and sweep with the settings below
    monkeypatch.setattr(atri.store.rows, "STALE_AFTER", timedelta(seconds=2))
    monkeypatch.setattr(atri.answers, "HEARTBEAT_S", 0.2)
    monkeypatch.setattr(atri.answers, "SWEEP_EVERY_BEATS", 2)
    cid = survivor.create_conversation("alice", "dies")
    survivor.append("alice", cid, Message("user", "tell me a long story " * 10))
    fake.chunk_delay_s = 0.3
    process = spawn(ANSWER_PROCESS, pg_url, fake.base_url, cid)
    try:
        def partial() -> Message | None:
            last = survivor.messages("alice", cid)[-1]
            return last if last.role == "assistant" and len(last.content) > 10 else None

        wait_for(partial, 20, "a partial answer saved by the other replica")
        # Alive: the sweep leaves a heartbeating replica's answer alone.
        time.sleep(3)
        assert survivor.messages("alice", cid)[-1].facts.error_kind == "streaming"
    finally:
        kill(process)
    killed_at = time.monotonic()

    def marked():
        with survivor.engine.connect() as connection:
            row = connection.execute(text("SELECT error_kind, completion_tokens FROM messages "
                                          "WHERE conversation_id = :c AND role = 'assistant'"), {"c": cid}).one()
        return row if row.error_kind == "interrupted" else None

    stored = wait_for(marked, 8, "the dead replica's answer marked interrupted in the database")
    swept = time.monotonic() - killed_at
    assert swept < 6, f"marked {swept:.1f} s after the kill"
    assert survivor.messages("alice", cid)[-1].content.startswith("Echo: tell me"), "the partial answer is kept"
    report = survivor.usage_report("alice")
    assert {"kind": "interrupted", "answers": 1} in report["errors"]
    assert stored.completion_tokens > 0
    assert sum(row["completion_tokens"] for row in report["by_model"]) == stored.completion_tokens
