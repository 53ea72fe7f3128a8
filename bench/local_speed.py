"""The embedded model's speed where the user sees it: llama.cpp in-process, the server path, Atri in a browser.

    python bench/local_speed.py [--runs 5] [--turns 20] [--no-browser]

One run of the script measures, on this machine:
  in-process   llama_cpp.Llama.create_chat_completion(stream=True), at 1 thread and at all cores;
  server       Atri's client path (request building -> openai SDK -> HTTP/SSE -> llama.cpp server ->
               chunk parsing -> Turn), the server started as the app starts it;
  browser      `streamlit run app.py` driven by Playwright in headless Chromium: Enter in the chat box,
               a MutationObserver timestamps every change of the answer's text in the DOM;
  cache        one chat of --turns turns on that server: time to first token at turn 2 and at the last
               turn, and the last turn again with its prefix gone (what the prompt cache saves), with the
               prompt tokens the server read and reused for each (from its log);
  queue        two questions at once through the app's one-slot gate: each one's wait and speed.
The machine is shared, and its speed drifts within minutes: so in-process at all cores, the server path and
the browser run back to back, one answer each per round, and each round's ratios to in-process are its
own. The table shows the median round (after a warm-up round), and the ratios are the medians of the
rounds' ratios. Every path asks the same question with the same persona at temperature 0 and may answer
to its natural end (the app's cap is the model's max_output), so the answers are the same tokens. Each
round changes the persona's first word, so no round starts from the previous one's prompt cache. Tokens
are counted with the model's own vocabulary: tokens/s is from the first to the last token seen, (tokens -
first) / (last - first); in the browser, from the first to the last change of the answer in the DOM,
scaled from rendered text to the stored answer's tokens.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atri.calls import run_turn  # noqa: E402
from atri.local import BUNDLED_MODEL_ID, assemble_model, cache_dir, default_threads, gguf_token_counter, start_engine  # noqa: E402
from atri.local_queue import SlotGate  # noqa: E402
from atri.messages import ChatOptions, Message  # noqa: E402
from atri.providers import LOCAL, catalogue  # noqa: E402
from atri.request import build_request  # noqa: E402
from atri.settings import Connection  # noqa: E402
from atri.store import title_from  # noqa: E402

T = TypeVar("T")
PERSONA = "Session {run}. You are a helpful assistant."
QUESTION = "Explain bubble sort with a Python example."
CHAT_QUESTIONS = ["What is a list in Python?", "And a tuple?", "How do I sort a list?", "Reverse it?",
                  "What is a dict?", "How do I loop over it?"]
CHAT_ANSWER_TOKENS = 48  # short answers, so that --turns turns fit the model's context
PROVIDER = catalogue()[LOCAL]
MODEL = PROVIDER.models[0]

# Records every change of the newest answer's text, with the page's clock, and the moment Enter went down.
OBSERVER_JS = """() => {
  const state = window.__atriBench = {enter: null, marks: []};
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && state.enter === null) state.enter = performance.now();
  }, true);
  new MutationObserver(() => {
    if (state.enter === null) return;
    const messages = document.querySelectorAll('[data-testid=stChatMessage]');
    if (messages.length < 2) return;
    const box = messages[messages.length - 1].querySelector('[data-testid=stMarkdownContainer]');
    const text = box ? box.textContent.replace('\u258c', '').trim() : '';
    const last = state.marks[state.marks.length - 1];
    if (text && (!last || last[1] !== text)) state.marks.push([performance.now(), text]);
  }).observe(document.body, {childList: true, subtree: true, characterData: true});
}"""


@dataclass
class Run:
    ttft: float  # seconds from asking to the first token seen
    rate: float  # tokens/s from the first to the last token seen
    tokens: int
    waited: float = 0.0  # in a queue, before the request went out


def rate_of(marks: list[tuple[float, int]]) -> float:
    """(time, tokens so far) at each change -> tokens/s from the first change to the last."""
    (first_at, first_tokens), (last_at, last_tokens) = marks[0], marks[-1]
    return (last_tokens - first_tokens) / (last_at - first_at) if last_at > first_at else 0.0


@dataclass
class Round:
    """One answer from each path, back to back: the machine's speed is about the same for all three."""
    raw: Run  # in-process, all cores
    server: Run
    app: Run | None  # None: --no-browser

    def ratio(self, path: str) -> float:
        return getattr(self, path).rate / self.raw.rate

    def ttft_added(self, path: str) -> float:
        return getattr(self, path).ttft - self.raw.ttft


def median_ratio(measured: list[Round], path: str) -> float:
    return statistics.median([one.ratio(path) for one in measured])


def median_run(runs: list[Run]) -> Run:
    return Run(statistics.median([run.ttft for run in runs]), statistics.median([run.rate for run in runs]), runs[0].tokens)


def persona(run: int) -> str:
    return PERSONA.format(run=run)


def request_messages(run: int, question: str = QUESTION) -> list[dict]:
    """Exactly what Atri sends for this question in a new chat with this persona."""
    options = ChatOptions(LOCAL, BUNDLED_MODEL_ID, temperature=0.0, system_prompt=persona(run))
    return build_request([Message("user", question)], options, MODEL, PROVIDER).kwargs["messages"]


def load_llama(model_path: Path, threads: int):
    from llama_cpp import Llama

    return Llama(model_path=str(model_path), n_ctx=MODEL.context_window, n_threads=threads, verbose=False)


def in_process_answer(llama, run: int, count: Callable[[str], int]) -> Run:
    started, text, marks = time.perf_counter(), "", []
    for chunk in llama.create_chat_completion(request_messages(run), stream=True, temperature=0.0,
                                              max_tokens=MODEL.max_output):
        piece = chunk["choices"][0]["delta"].get("content")
        if piece:
            text += piece
            marks.append((time.perf_counter(), text))
    return Run(marks[0][0] - started, rate_of([(at, count(t)) for at, t in (marks[0], marks[-1])]), count(text))


def in_process(model_path: Path, runs: int, threads: int, count: Callable[[str], int]) -> list[Run]:
    llama = load_llama(model_path, threads)
    return [in_process_answer(llama, run, count) for run in range(runs + 1)][1:]  # the first warms up


def server_turn(connection: Connection, messages: list[dict], count: Callable[[str], int],
                max_tokens: int | None = None) -> tuple[Run, str]:
    """One answer through Atri's client path (the same run_turn the answer workers use)."""
    history = [Message(m["role"], m["content"]) for m in messages if m["role"] != "system"]
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    options = ChatOptions(LOCAL, BUNDLED_MODEL_ID, temperature=0.0, system_prompt=system)
    plan = build_request(history, options, MODEL, PROVIDER)
    if max_tokens:
        plan.kwargs["max_tokens"] = max_tokens
    marks, seen = [], ""
    for turn in run_turn(connection, plan, count=count):
        if turn.content != seen:
            seen = turn.content
            marks.append((time.perf_counter(), seen))
    if turn.error is not None:
        raise RuntimeError(f"the server path failed: {turn.error}")
    first, last = marks[0], marks[-1]
    return Run(turn.first_token_at - turn.started, rate_of([(first[0], count(first[1])), (last[0], count(last[1]))]),
               count(turn.content)), turn.content


def chat_cache(connection: Connection, turns: int, count: Callable[[str], int], server_log: Path) -> dict:
    """TTFT along one chat: the server keeps the previous turn's tokens, so only the new ones are read.
    How many it read comes from the server's own log ("N prefix-match hit, remaining M prompt tokens")."""
    messages = [{"role": "system", "content": persona(0)}]
    ttfts: dict = {}
    for turn in range(1, turns + 1):
        messages.append({"role": "user", "content": CHAT_QUESTIONS[(turn - 1) % len(CHAT_QUESTIONS)]})
        run, answer = server_turn(connection, messages, count, CHAT_ANSWER_TOKENS)
        ttfts[turn] = run.ttft
        ttfts[f"read {turn}"] = _prompt_tokens_read(server_log)
        if turn == turns:
            cold = [dict(m) for m in messages]
            cold[0]["content"] = "Cold. " + cold[0]["content"]  # the same chat with its prefix changed
            ttfts["cold"] = server_turn(connection, cold, count, CHAT_ANSWER_TOKENS)[0].ttft
            ttfts["read cold"] = _prompt_tokens_read(server_log)
        messages.append({"role": "assistant", "content": answer})
    return ttfts


def _prompt_tokens_read(server_log: Path) -> tuple[int, int] | None:
    """(tokens reused from the cache, tokens read) of the server's latest request."""
    hits = re.findall(r"(\d+) prefix-match hit, remaining (\d+) prompt tokens", server_log.read_text(errors="replace"))
    return (int(hits[-1][0]), int(hits[-1][1])) if hits else None


def two_at_once(connection: Connection, count: Callable[[str], int]) -> list[Run]:
    """Two visitors ask at the same moment; the app's gate lets one generate at a time."""
    gate, results, ready = SlotGate(), [None, None], threading.Barrier(2)

    def visit(index: int) -> None:
        ready.wait()
        asked = time.perf_counter()
        if index:
            time.sleep(0.05)  # the second one arrives just after the first
        with gate.acquire():
            waited = time.perf_counter() - asked
            run, _ = server_turn(connection, request_messages(100 + index), count)
        results[index] = Run(run.ttft + waited, run.rate, run.tokens, waited)

    threads = [threading.Thread(target=visit, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@contextmanager
def browser_chat(count: Callable[[str], int], log: Path | None) -> Iterator[Callable[[int], Run]]:
    """Atri in headless Chromium, ready to ask: `ask(run)` asks the question in a new chat with that run's
    persona and returns what the page showed."""
    from playwright.sync_api import expect, sync_playwright
    from sqlalchemy import create_engine, text

    from tests.browser import IDLE, launch, open_settings, streamlit_server

    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as playwright:
        database_url = f"sqlite:///{Path(scratch) / 'atri.db'}"
        database = create_engine(database_url)
        with streamlit_server({"ATRI_DATABASE_URL": database_url}, log=log) as app:
            browser = launch(playwright)
            page = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900}).new_page()
            page.goto(app.url)
            page.wait_for_selector(IDLE, timeout=180_000)  # the first run assembles and starts the model
            open_settings(page)  # the temperature and the system prompt are in the chat's settings panel
            slider = page.get_by_test_id("stSlider").get_by_role("slider")
            slider.focus()
            page.keyboard.press("Home")  # temperature 0, as in the other paths
            page.wait_for_selector(IDLE)

            def ask(run: int) -> Run:
                page.get_by_test_id("stSidebar").get_by_role("button", name="New chat").click()
                expect(page.get_by_test_id("stChatMessage")).to_have_count(0)  # the click's run can end unseen
                page.wait_for_selector(IDLE)
                open_settings(page)
                page.get_by_label("System prompt").fill(persona(run))
                page.get_by_label("System prompt").blur()
                page.wait_for_selector(IDLE)
                page.evaluate(OBSERVER_JS)
                page.get_by_test_id("stChatInputTextArea").fill(QUESTION)
                page.keyboard.press("Enter")
                answer = page.get_by_test_id("stChatMessage").nth(1)
                expect(answer.get_by_test_id("stCaptionContainer").filter(has_text=BUNDLED_MODEL_ID)).to_have_count(
                    1, timeout=300_000)  # the facts line: the answer ended and was saved
                state = page.evaluate("() => window.__atriBench")
                with database.connect() as connection:
                    cid = connection.execute(text(
                        "SELECT c.id FROM conversations c ORDER BY c.created_at DESC LIMIT 1")).scalar_one()
                    stored = connection.execute(text(
                        "SELECT content FROM messages WHERE conversation_id = :c AND role = 'assistant'"),
                        {"c": cid}).scalar_one()
                marks = state["marks"]
                scale = count(stored) / max(1, count(marks[-1][1]))  # rendered text -> the model's tokens
                tokens = [(at / 1000, count(shown) * scale) for at, shown in marks]
                _wait_for_title(database, cid, title_from(QUESTION))
                return Run((marks[0][0] - state["enter"]) / 1000, rate_of(tokens), count(stored))

            try:
                yield ask
            finally:
                browser.close()
                database.dispose()


def _wait_for_title(database, cid: str, first_words: str, timeout_s: float = 30) -> None:
    """The first answer of a chat is followed by a title call to the same model: let it end before the
    next run, so that the next question does not wait behind it."""
    from sqlalchemy import text

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with database.connect() as connection:
            title = connection.execute(text("SELECT title FROM conversations WHERE id = :c"), {"c": cid}).scalar_one()
        if title != first_words:
            return
        time.sleep(0.2)


def _read(hit: tuple[int, int] | None) -> str:
    return f"(read {hit[1]} new prompt tokens, {hit[0]} from the cache)" if hit else "(server log unreadable)"


def progress(what: str, result: T) -> T:
    """Each part's result on stderr as soon as it is measured (the table comes at the end, on stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {what}: {result}", file=sys.stderr, flush=True)
    return result


def rounds(model_path: Path, connection: Connection, runs: int, count: Callable[[str], int],
           browser: bool, log: Path | None) -> list[Round]:
    """`runs` rounds (after a warm-up round) of: in-process at all cores, the server path, the browser."""
    llama = load_llama(model_path, default_threads())
    with ExitStack() as stack:
        ask = stack.enter_context(browser_chat(count, log)) if browser else None
        measured = []
        for run in range(runs + 1):
            raw = in_process_answer(llama, run, count)
            server = server_turn(connection, request_messages(run), count)[0]
            app = ask(run) if ask else None
            measured.append(progress(f"round {run}{' (warm-up)' if run == 0 else ''}", Round(raw, server, app)))
    return measured[1:]


def row(name: str, run: Run, measured: list[Round] | None = None, path: str = "") -> str:
    line = f"{name:<44}{run.rate:>9.1f}{run.ttft:>9.3f}{run.tokens:>8}"
    if measured:
        added = statistics.median([one.ttft_added(path) for one in measured])
        line += f"{median_ratio(measured, path):>9.0%}{added * 1000:>+9.0f}"
    return line


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--log", type=Path, default=None, help="append the Streamlit server's output here")
    args = parser.parse_args()
    model_path = assemble_model(cache_dir())
    count = gguf_token_counter(str(model_path))
    cores = default_threads()

    raw_one = progress("in-process, 1 thread", median_run(in_process(model_path, args.runs, 1, count)))
    server_log = Path(tempfile.mkdtemp()) / "bench-server.log"  # the app's own server writes local-server.log
    engine = start_engine(model_path, BUNDLED_MODEL_ID, log_path=server_log)
    try:
        connection = Connection(PROVIDER, engine.base_url, "not-needed")
        measured = rounds(model_path, connection, args.runs, count, not args.no_browser, args.log)
        cache = progress("prompt cache", chat_cache(connection, args.turns, count, server_log))
        queued = progress("two at once", two_at_once(connection, count))
    finally:
        engine.stop()
    raw_all, server = median_run([one.raw for one in measured]), median_run([one.server for one in measured])

    print(f"Embedded model (Qwen2.5-Coder-0.5B Q4_K_M) · {os.cpu_count()} cores · {args.runs} rounds, medians · "
          f"temperature 0, answers to their natural end · server threads {cores}")
    print(f"{'path':<44}{'tok/s':>9}{'TTFT s':>9}{'tokens':>8}{'vs raw':>9}{'TTFT ms':>9}")
    print(row("llama.cpp in-process, 1 thread", raw_one))
    print(row(f"llama.cpp in-process, {cores} threads (raw)", raw_all))
    print(row("server path (openai SDK stream, run_turn)", server, measured, "server"))
    if not args.no_browser:
        app = median_run([one.app for one in measured])
        print(row("Atri in Chromium (DOM, Enter to text)", app, measured, "app"))
    print("each round, tok/s raw / server" + ("" if args.no_browser else " / browser") + ": " + ", ".join(
        " / ".join(f"{run.rate:.1f}" for run in (one.raw, one.server, one.app) if run) for one in measured))
    last = args.turns
    print(f"prompt cache, one chat: TTFT turn 2 {cache[2]:.3f} s {_read(cache['read 2'])}, turn {last} {cache[last]:.3f} s "
          f"{_read(cache[f'read {last}'])}; turn {last} with its prefix changed {cache['cold']:.3f} s {_read(cache['read cold'])}")
    first, second = queued
    print(f"two at once, one slot: first TTFT {first.ttft:.2f} s at {first.rate:.1f} tok/s; second waited "
          f"{second.waited:.2f} s in the queue, then {second.rate:.1f} tok/s")
    path = "server" if args.no_browser else "app"
    print(f"{path}/raw(all cores): {median_ratio(measured, path):.0%}")

if __name__ == "__main__":
    main()
