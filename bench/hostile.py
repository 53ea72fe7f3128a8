"""What hostile visitors cost a normal one, in a real browser (issue 27).

    python -m bench.hostile [--turns 5]

One `streamlit run` on the tests' fake DashScope server (no delay between chunks), driven by Playwright in
Debian's headless Chromium, with tests/test_browser_under_attack.py's machinery: a normal visitor's
Enter → answer (until the whole answer is shown, checked on every animation frame) is timed
  alone   — nobody else on the server;
  busy    — four other sessions (chat with the calculator, two on Batch, one on Extract) each sending
            ordinary input just as the normal visitor presses Enter: what concurrency itself costs;
  attack  — the same four sending the calculator bomb, an XLSX bomb (declaring A1:XFD1048576, or rows
            reaching column XFD), a 5,000-column CSV and a ReDoS pattern on Extract.
Each is the median of --turns; the busy and attack turns alternate in one run. The last line is the ratios;
tests/test_browser_under_attack.py allows attack ≤ 1.5 × busy + 0.3 s.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.browser import launch, streamlit_server
from tests.fake_provider import FakeProvider
from tests.test_browser_persistence import env_for
from tests.test_browser_under_attack import report_of, under_attack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=5)
    args = parser.parse_args()
    fake = FakeProvider().start()
    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as playwright:
        with streamlit_server(env_for(fake, f"sqlite:///{Path(scratch) / 'atri.db'}")) as app:
            browser = launch(playwright)
            alone, busy, attack, attackers = under_attack(app.url, fake, browser, turns=args.turns)
            browser.close()
            alive = app.process.poll() is None
    fake.stop()

    print(f"Browser: headless Chromium · median of {args.turns} · fake server, no delay · {os.cpu_count()} cores")
    for label, times in [("alone", alone), ("busy", busy), ("attack", attack)]:
        print(f"{label:>7} {statistics.median(times):6.2f}s   ({', '.join(f'{t:.2f}' for t in times)})")
    print(report_of(alone, busy, attack, attackers))
    print(f"server alive at the end: {alive}")
    median = {label: statistics.median(times) for label, times in [("alone", alone), ("busy", busy), ("attack", attack)]}
    print(f"attack / alone: {median['attack'] / median['alone']:.2f}x · busy / alone: {median['busy'] / median['alone']:.2f}x · "
          f"attack / busy: {median['attack'] / median['busy']:.2f}x")


if __name__ == "__main__":
    main()
