"""Issue 27, "How it is shown": one visitor cannot hurt the others, in a real browser.

While attacker sessions on the same `streamlit run` send the calculator bomb (tools on), an XLSX bomb and
a CSV bomb on Batch and a backtracking (ReDoS) pattern on Extract, a normal visitor's Enter → answer stays
within 1.5× of the same measured while those sessions send ordinary input, and no process dies. Before the
work was bounded and isolated (0b7b554) the calculator bomb alone held the server's Python for about a
minute.

Why "ordinary input" and not "alone" is the baseline: four other sessions on the same server and the same
two cores cost a normal visitor time whatever they send (their reruns run in the server's Python; their
browsers share the cores): in CI's run of 2026-12-04 an answer took 0.11 s alone and 0.52 s beside the
attacks, and bench/hostile.py measures ~3× for harmless sessions as well. What the issue asks is that an
attack costs the others no more than the same visitors using the app would; so each of the normal
visitor's turns alternates between a harmless volley and a hostile one, in the same run, and the medians
are compared. The time alone is measured and printed too.

The attackers run in a thread of their own, with their own Playwright and browser (Playwright's sync API
is one instance per thread), niced: on a real server they would be elsewhere. Before each of the normal
visitor's questions every attacker whose last attack has come back sends a new one, so that the Enter is
pressed with all four in flight. Every upload has a new name and every schema a new description, so no
cache answers in the work's place; a page that crashes instead of refusing is caught too. Not here:
password guesses (with a password set every session would have to log in first; tests/test_front_door.py
covers them).

bench/hostile.py prints the same times.
"""
from __future__ import annotations

import json
import queue
import re
import shlex
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from tests.browser import CHROMIUM, CHROMIUM_ARGS, IDLE, NO_CHROMIUM, chromium_available, launch, open_settings, streamlit_server
from tests.fake_provider import Fault
from tests.test_browser_persistence import ANSWER_END, env_for, open_page, send
from tests.test_hostile_work import sheet_rewritten, workbook_bytes

pytestmark = pytest.mark.skipif(not chromium_available(), reason=NO_CHROMIUM)

SLOWER_AT_MOST = 1.5
# An Enter → answer beside four busy sessions takes 0.25-0.9 s here, where a scheduler tick, a garbage
# collection or a browser's painting moves it by a good part of that. So the bound is 1.5× the time beside
# harmless sessions plus this much: far below a stall (the old code: over ANSWER_TIMEOUT_S).
NOISE_FLOOR_S = 0.3
TURNS = 6  # each way; the medians are compared
ANSWER_TIMEOUT_S = 20  # far past any fair answer: the old code's calculator bomb held everyone ~60 s

CALCULATOR_BOMB = '[[calculator {"expression": "3999999**3999999"}]]'
REDOS_PATTERN = "^(a+)+$"
REDOS_ANSWER = json.dumps({"code": "a" * 28 + "!"})  # 27 s of backtracking per check with Python's re


# --- the bombs ---


def xlsx_declaring_everything(tag: str) -> bytes:
    """A few KB whose sheet declares every cell of a sheet: A1:XFD1048576."""
    return sheet_rewritten(workbook_bytes([["prompt"], [f"hello {tag}"], ["world"]]),
                            lambda xml: re.sub(rb'<dimension ref="[^"]*"/>', b'<dimension ref="A1:XFD1048576"/>', xml))


def xlsx_reaching_the_last_column(tag: str) -> bytes:
    """200 rows whose second cell sits in column XFD: 16,384 cells a row, once padded."""
    rows: list[list[object]] = [["prompt"]] + [[f"q{i} {tag}", "x"] for i in range(200)]
    return sheet_rewritten(workbook_bytes(rows), lambda xml: re.sub(rb'r="B(\d+)"', rb'r="XFD\1"', xml))


def csv_bomb(tag: str) -> bytes:
    """33 KB: a header of 5,000 columns, then 2,000 one-cell rows (each padded to 5,000 by the old code)."""
    return (",".join(f"c{i}" for i in range(5_000)) + f"\n{tag}" + "\nx" * 2_000).encode()


def redos_schema(tag: str) -> str:
    return json.dumps({"type": "object", "description": f"attack {tag}", "required": ["code"],
                       "properties": {"code": {"type": "string", "pattern": REDOS_PATTERN}}}, indent=1)


# --- the normal visitor's time, measured in the page ---

# Checked on every animation frame, in the page (as bench/browser_turn.py does): Playwright's own `expect`
# polls at 100, 250, 500 ms…, which would round every time up to its next poll.
LAST_MESSAGE_HAS = """([text, count]) => {
    const messages = document.querySelectorAll('[data-testid="stChatMessage"]');
    return messages.length >= count && messages[messages.length - 1].innerText.includes(text);
}"""


def time_answer(page, question: str) -> float:
    """Seconds from pressing Enter to the whole answer shown; past ANSWER_TIMEOUT_S, that many."""
    count = page.get_by_test_id("stChatMessage").count() + 2
    page.get_by_test_id("stChatInputTextArea").fill(question)
    started = time.perf_counter()
    page.keyboard.press("Enter")
    try:
        page.wait_for_function(LAST_MESSAGE_HAS, arg=[f"Echo: {question}. Meow~ This answer streams in {ANSWER_END}", count],
                               polling="raf", timeout=ANSWER_TIMEOUT_S * 1000)
    except PlaywrightTimeout:
        return ANSWER_TIMEOUT_S
    elapsed = time.perf_counter() - started
    page.wait_for_selector(IDLE, timeout=ANSWER_TIMEOUT_S * 1000)
    return elapsed


def time_turns(page, label: str, turns: int = TURNS) -> list[float]:
    """The normal visitor's times with nobody else busy."""
    times = []
    for index in range(turns):
        times.append(time_answer(page, f"{label} question {index}"))
        page.wait_for_timeout(300)  # a visitor reads a little before asking again
    return times


def time_turns_beside(page, attackers: Attackers, turns: int = TURNS) -> tuple[list[float], list[float]]:
    """The normal visitor's times, each Enter pressed as a volley was just sent: harmless and hostile volleys
    alternate (which comes first alternates too), so that both see the same server, browser and noise."""
    times: dict[bool, list[float]] = {True: [], False: []}
    for index in range(turns):
        for harmless in (True, False) if index % 2 else (False, True):
            attackers.settle(timeout_s=30 if harmless else 5)  # a harmless turn never has an attack in flight
            attackers.volley(harmless=harmless)
            times[harmless].append(time_answer(page, f"{'busy' if harmless else 'attacked'} question {index}"))
            if times[harmless][-1] >= ANSWER_TIMEOUT_S:
                return times[True], times[False]  # the server is stalled: no need to wait through more of it
            page.wait_for_timeout(300)
    return times[True], times[False]


# --- the attackers ---

# Counts the page's finished script runs, so that an attacker can wait for the run its upload started.
COUNT_RUNS = """() => {
    window.__runs = 0;
    new MutationObserver(records => {
        for (const record of records) {
            if (record.oldValue === 'running' && record.target.getAttribute('data-test-script-state') !== 'running') {
                window.__runs += 1;
            }
        }
    }).observe(document.body, {subtree: true, attributes: true, attributeOldValue: true,
                               attributeFilter: ['data-test-script-state']});
}"""
# The run after an upload has ended; or, as a run that takes a few milliseconds can go by without the page
# ever showing it running, the file has been shown attached for 3 s.
UPLOAD_READ = """([runs, name]) => window.__runs > runs
    || (performance.now() - window.__sentAt > 3000 && document.body.innerText.includes(name))"""
CALCULATOR_ANSWERED = """([count]) => {
    const messages = document.querySelectorAll('[data-testid="stChatMessage"]');
    return messages.length >= count && messages[messages.length - 1].innerText.includes('Tool results: calculator');
}"""
EXTRACTED = """([tag]) => [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
    .some(caption => caption.innerText.includes(`order code of ${tag}`))"""
IS_IDLE = "() => document.querySelector('[data-testid=stApp]').getAttribute('data-test-script-state') === 'notRunning'"
APP_ERROR = "This app has encountered an error"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def open_by_link(browser, url: str, name: str):
    """A page of the app, reached from the sidebar (a first visit straight to /batch may be told "Page not
    found" in a dialog that covers the page, before the navigation is known)."""
    page = open_page(browser, url)
    page.get_by_test_id("stSidebarNav").get_by_text(name, exact=True).click()
    page.wait_for_url(f"**/{name.lower()}")
    page.wait_for_selector(IDLE, timeout=30_000)
    return page


def launch_niced(playwright, scratch: Path):
    """Chromium at the lowest CPU priority: the attackers' browsers would be on other machines, not on the
    two cores the server and the normal visitor's browser share here."""
    wrapper = scratch / "chromium-niced"
    wrapper.write_text(f'#!/bin/sh\nexec nice -n 19 {shlex.quote(CHROMIUM)} "$@"\n')
    wrapper.chmod(0o755)
    return playwright.chromium.launch(executable_path=str(wrapper), args=CHROMIUM_ARGS)


class Attackers:
    """Four hostile sessions, in a thread with its own Playwright and browser. `volley()` has each of them
    that is not still waiting for its last attack send a new one, and returns as they are sent; `settle()`
    waits (a while) for their outcomes. `rounds` counts the attacks that came back by kind, `outcomes` what
    the attackers were shown. A `harmless` volley has the same sessions do the same with ordinary input
    (counted only if a page crashed)."""

    KINDS = ("calculator", "xlsx", "csv", "redos")

    def __init__(self, url: str, fake) -> None:
        self.url, self.fake = url, fake
        self.rounds: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.error: BaseException | None = None
        # Built once (building them holds this process's Python, where the fake provider answers too); a new
        # name each time is enough for the page's cache to miss.
        self.files = {"declared": xlsx_declaring_everything("bomb"), "wide": xlsx_reaching_the_last_column("bomb"),
                      "csv": csv_bomb("bomb"), "small": workbook_bytes([["prompt"], ["hello"], ["world"]]),
                      "small.csv": b"prompt\nhello\nworld\n"}
        self._xlsx_sent = 0
        # kind: (volley, harmless, what shows its outcome)
        self._pending: dict[str, tuple[int, bool, str, list, list[str]]] = {}
        self._stop = threading.Event()
        self._all_ended = threading.Event()
        self._asked: queue.Queue[tuple[int, bool]] = queue.Queue()
        self._fired: queue.Queue[bool] = queue.Queue()
        self._volleys = 0
        self._thread = threading.Thread(target=self._run, name="attackers", daemon=True)

    def __enter__(self) -> Attackers:
        self._thread.start()
        self.volley(harmless=True, timeout_s=90)  # the first starts the server's workers: not measured
        self.settle(timeout_s=60)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def volley(self, harmless: bool = False, timeout_s: float = 30) -> None:
        self._all_ended.clear()
        self._asked.put((self._volleys, harmless))
        self._volleys += 1
        try:
            sent = self._fired.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError(f"the attackers did not attack within {timeout_s} s") from None
        if not sent:
            raise RuntimeError(f"the attackers stopped: {self.error!r}") from self.error

    def settle(self, timeout_s: float = 5) -> None:
        """Wait until every attack sent has had its outcome, or `timeout_s` (the rest go on meanwhile)."""
        self._all_ended.wait(timeout_s)
        if self.error:
            raise RuntimeError(f"the attackers stopped: {self.error!r}") from self.error

    def _run(self) -> None:
        try:
            with sync_playwright() as playwright, tempfile.TemporaryDirectory() as scratch:
                browser = launch_niced(playwright, Path(scratch))
                try:
                    pages = {"calculator": self._calculator_page(browser), "xlsx": self._batch_page(browser),
                             "csv": self._batch_page(browser), "redos": self._extract_page(browser)}
                    while not self._stop.is_set():
                        try:
                            number, harmless = self._asked.get(timeout=0.1)
                        except queue.Empty:
                            pass
                        else:
                            for kind in self.KINDS:
                                if kind not in self._pending:
                                    attack = getattr(self, f"_{kind}")
                                    self._pending[kind] = (number, harmless, *attack(pages[kind], f"r{number}", harmless))
                            self._fired.put(True)
                        self._collect(pages)
                finally:
                    browser.close()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            if not self._stop.is_set():
                self.error = error
            self._fired.put(False)
            self._all_ended.set()

    def _collect(self, pages) -> None:
        for kind, (number, harmless, condition, arg, shown) in list(self._pending.items()):
            page = pages[kind]
            if page.evaluate(condition, arg) and page.evaluate(IS_IDLE):
                del self._pending[kind]
                if number == 0:
                    continue
                text = page.locator("body").inner_text()
                self.outcomes.update(s for s in [APP_ERROR] + ([] if harmless else shown) if s in text)
                if not harmless:
                    self.rounds[kind] += 1
        if not self._pending:
            self._all_ended.set()

    # setting up

    def _calculator_page(self, browser):
        page = open_page(browser, self.url)
        open_settings(page)
        page.get_by_text("Tools", exact=True).click()
        page.get_by_text("Calculator", exact=True).click()
        page.wait_for_selector(IDLE, timeout=30_000)
        return page

    def _batch_page(self, browser):
        page = open_by_link(browser, self.url, "Batch")
        page.get_by_text("A CSV / XLSX file", exact=True).click()
        page.locator("[data-testid=stFileUploaderDropzoneInput]").wait_for(state="attached", timeout=30_000)
        page.wait_for_selector(IDLE, timeout=30_000)
        page.evaluate(COUNT_RUNS)
        return page

    def _extract_page(self, browser):
        page = open_by_link(browser, self.url, "Extract")
        page.get_by_role("radio", name="Text", exact=True).click()
        page.wait_for_selector(IDLE, timeout=30_000)
        page.get_by_role("radio", name="JSON Schema", exact=True).click()
        page.wait_for_selector(IDLE, timeout=30_000)
        return page

    # the attacks: each sends one and says what shows its outcome (a condition for the page, its argument,
    # and the texts worth counting)

    def _calculator(self, page, tag: str, harmless: bool):
        messages = page.get_by_test_id("stChatMessage").count()
        expression = CALCULATOR_BOMB.replace("3999999**3999999", "6*7") if harmless else CALCULATOR_BOMB
        send(page, f"Work this out for me ({tag}): {expression}")
        return CALCULATOR_ANSWERED, [messages + 2], ["digits"]

    def _xlsx(self, page, tag: str, harmless: bool):
        self._xlsx_sent += not harmless
        kind = "small" if harmless else "wide" if self._xlsx_sent % 2 else "declared"
        condition, arg = self._upload(page, f"{kind}-{tag}.xlsx", self.files[kind], XLSX)
        return condition, arg, ["Ready: 2 requests", "The table is too large", "took more time or memory"]

    def _csv(self, page, tag: str, harmless: bool):
        condition, arg = self._upload(page, f"columns-{tag}.csv", self.files["small.csv" if harmless else "csv"], "text/csv")
        return condition, arg, ["At most 500 columns"]

    def _redos(self, page, tag: str, harmless: bool):
        # The model answers with 28 a's and "!", to the question and to the retry asking it to mend that
        # (both quote the pattern).
        pattern = "^a+!$" if harmless else REDOS_PATTERN
        self.fake.script(*[Fault("answer", text=REDOS_ANSWER, when=pattern)] * (1 if harmless else 2))
        page.get_by_label("JSON Schema", exact=True).fill(redos_schema(tag).replace(REDOS_PATTERN, pattern))
        page.get_by_label("Text", exact=True).fill(f"The order code of {tag} is {'a' * 28}!")
        page.wait_for_selector(IDLE, timeout=ANSWER_TIMEOUT_S * 1000)  # the schema's check (a new one each time)
        page.get_by_role("button", name="Extract", exact=True).click()
        return EXTRACTED, [tag], ["does not match the schema"]

    @staticmethod
    def _upload(page, name: str, data: bytes, mime: str) -> tuple[str, list]:
        runs = page.evaluate("window.__sentAt = performance.now(), window.__runs")
        page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(
            files=[{"name": name, "mimeType": mime, "buffer": data}])
        return UPLOAD_READ, [runs, name]


def under_attack(url: str, fake, browser, turns: int = TURNS) -> tuple[list[float], list[float], list[float], Attackers]:
    """The normal visitor's Enter → answer times alone, then beside harmless and hostile volleys."""
    page = open_page(browser, url)
    send(page, "Hello, I am the normal visitor")  # the first turn also names the chat: not measured
    page.wait_for_function(LAST_MESSAGE_HAS, arg=[ANSWER_END, 2], timeout=ANSWER_TIMEOUT_S * 1000)
    page.wait_for_selector(IDLE, timeout=ANSWER_TIMEOUT_S * 1000)
    alone = time_turns(page, "alone", turns)
    with Attackers(url, fake) as attackers:
        busy, attacked = time_turns_beside(page, attackers, turns)
    page.context.close()
    return alone, busy, attacked, attackers


def report_of(alone: list[float], busy: list[float], attacked: list[float], attackers: Attackers) -> str:
    def listed(times: list[float]) -> str:
        return f"median {statistics.median(times):.2f} s ({', '.join(f'{t:.2f}' for t in times)})"
    return (f"Enter → answer alone {listed(alone)}; beside harmless sessions {listed(busy)}; beside attacks "
            f"{listed(attacked)}; attacks that came back {dict(attackers.rounds)}, shown {dict(attackers.outcomes)}")


def test_a_normal_visitor_is_answered_as_fast_while_others_attack(fake, database_url):
    with streamlit_server(env_for(fake, database_url)) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            alone, busy, attacked, attackers = under_attack(app.url, fake, browser)
        finally:
            try:
                browser.close()
            except PlaywrightError:
                pass
        alive = app.process.poll() is None
    report = report_of(alone, busy, attacked, attackers)
    print(report)
    assert alive, "the server process died"
    assert statistics.median(attacked) <= SLOWER_AT_MOST * statistics.median(busy) + NOISE_FLOOR_S, report
    assert all(attackers.rounds[kind] for kind in Attackers.KINDS), f"an attack never came back: {report}"
    assert attackers.outcomes["digits"] >= 1, f"the calculator bomb was not refused: {report}"
    assert not attackers.outcomes[APP_ERROR], f"a page crashed instead of refusing: {report}"
    assert attackers.outcomes["At most 500 columns"] >= 1, f"the CSV bomb was not refused: {report}"
    assert attackers.outcomes["does not match the schema"] >= 1, f"the ReDoS answer was not checked: {report}"
