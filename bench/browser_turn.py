"""What a long chat costs the user, in a real browser: Atri against Streamlit's ChatGPT-like example.

    python -m bench.browser_turn [--sizes 10,100,500] [--tries 3]

Both apps run with `streamlit run` against the same fast OpenAI-compatible server on loopback (the
tests' fake DashScope, no delay between chunks) and are driven by Playwright in Debian's headless
Chromium. For each conversation size it prints, best of --tries:
  open   — goto the conversation's URL until its last message is drawn and the page is idle;
  answer — Enter until the whole new answer is shown.
The last lines are the ratios the issue asks for: Atri at the largest size over the smallest, and
Atri over the example at each size.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from playwright.sync_api import expect, sync_playwright
from sqlalchemy import text

from atri.messages import AnswerFacts, Message, Usage
from atri.store import Store
from bench.canned import canned_messages
from tests.browser import IDLE, launch, streamlit_server
from tests.fake_provider import GOOD_KEY, FakeProvider

BENCH = Path(__file__).resolve().parent
ANSWER_END = "several small pieces."


def best(values: list[float]) -> float:
    return min(values)


def seed(store: Store, owner: str, cid: str, count: int) -> None:
    for message in canned_messages(count):
        facts = None
        if message["role"] == "assistant":
            facts = AnswerFacts(model="qwen-plus", finish_reason="stop", ttft_s=0.1, total_s=0.5, usage=Usage(50, 120))
        store.append(owner, cid, Message(message["role"], message["content"], facts=facts))


def atri_conversation(page, app_url: str, database_url: str, count: int) -> str:
    """A conversation of `count` messages owned by this browser: one real turn, then the rest stored."""
    page.goto(app_url)
    page.wait_for_selector(IDLE, timeout=60_000)
    page.get_by_test_id("stChatInputTextArea").fill("start")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text(ANSWER_END, timeout=30_000)
    page.wait_for_url("**?c=*")
    cid = page.url.split("c=")[1].split("&")[0]
    store = Store(database_url)
    with store.engine.begin() as connection:
        owner = connection.execute(text("SELECT owner FROM conversations WHERE id = :id"), {"id": cid}).scalar()
        connection.execute(text("DELETE FROM messages WHERE conversation_id = :id"), {"id": cid})
    seed(store, owner, cid, count)
    store.engine.dispose()
    return f"{app_url}/?c={cid}"


def time_open(page, url: str, last_text: str) -> float:
    started = time.perf_counter()
    page.goto(url)
    expect(page.get_by_test_id("stChatMessage").last).to_contain_text(last_text, timeout=60_000)
    page.wait_for_selector(IDLE, timeout=60_000)
    return time.perf_counter() - started


# Checked on every animation frame, in the page: Playwright's own `expect` polls at 100, 250, 500 ms…, which
# would round every time up to its next poll.
LAST_MESSAGE_HAS = """text => {
    const messages = document.querySelectorAll('[data-testid="stChatMessage"]');
    return messages.length > 0 && messages[messages.length - 1].innerText.includes(text);
}"""


def time_answer(page, question: str) -> float:
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(question)
    started = time.perf_counter()
    page.keyboard.press("Enter")
    page.wait_for_function(LAST_MESSAGE_HAS, arg=f"Echo: {question}. Meow~ This answer streams in {ANSWER_END}",
                           polling="raf", timeout=60_000)
    elapsed = time.perf_counter() - started
    page.wait_for_selector(IDLE, timeout=60_000)
    return elapsed


def measure(context, url: str, last_text: str, tries: int) -> tuple[float, float]:
    page = context.new_page()
    opens = [time_open(page, url, last_text) for _ in range(tries)]
    answers = [time_answer(page, f"question {i}") for i in range(tries)]
    page.close()
    return best(opens), best(answers)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,100,500")
    parser.add_argument("--tries", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    fake = FakeProvider().start()
    results: dict[str, dict[int, tuple[float, float]]] = {"atri": {}, "example": {}}
    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as playwright:
        database_url = f"sqlite:///{Path(scratch) / 'atri.db'}"
        env = {"DASHSCOPE_API_KEY": GOOD_KEY, "DASHSCOPE_BASE_URL": fake.base_url, "ATRI_DATABASE_URL": database_url}
        example_env = {"BENCH_API_KEY": GOOD_KEY, "BENCH_BASE_URL": fake.base_url, "PYTHONPATH": str(BENCH)}
        browser = launch(playwright)
        with streamlit_server(env) as atri:
            for size in sizes:
                context = browser.new_context(locale="en-US")
                url = atri_conversation(context.new_page(), atri.url, database_url, size)
                last = canned_messages(size)[-1]["content"].split("\n")[-1][:40]
                results["atri"][size] = measure(context, url, last, args.tries)
                context.close()
        with streamlit_server(example_env, app_path=BENCH / "chatgpt_like_example.py") as example:
            for size in sizes:
                context = browser.new_context(locale="en-US")
                last = canned_messages(size)[-1]["content"].split("\n")[-1][:40]
                results["example"][size] = measure(context, f"{example.url}/?n={size}", last, args.tries)
                context.close()
        browser.close()
    fake.stop()

    print(f"Browser: headless Chromium · best of {args.tries} · fake server, no delay · {os.cpu_count()} cores")
    print(f"{'messages':>9} {'Atri open':>10} {'example open':>13} {'Atri answer':>12} {'example answer':>15}")
    for size in sizes:
        (a_open, a_answer), (e_open, e_answer) = results["atri"][size], results["example"][size]
        print(f"{size:>9} {a_open:>9.2f}s {e_open:>12.2f}s {a_answer:>11.2f}s {e_answer:>14.2f}s")
    small, large = sizes[0], sizes[-1]
    print(f"Atri {large} vs {small} messages: open {results['atri'][large][0] / results['atri'][small][0]:.2f}x, "
          f"answer {results['atri'][large][1] / results['atri'][small][1]:.2f}x")
    for size in sizes:
        print(f"Atri / example at {size}: answer {results['atri'][size][1] / results['example'][size][1]:.2f}x")


if __name__ == "__main__":
    main()
