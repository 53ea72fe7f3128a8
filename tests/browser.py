"""Helpers for real-browser tests: `streamlit run` on a free port, Debian's headless Chromium."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from atri.local import free_port
from tests.conftest import ROOT, clean_env

CHROMIUM = shutil.which("chromium-headless-shell") or "/usr/bin/chromium-headless-shell"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
IDLE = "[data-testid=stApp][data-test-script-state=notRunning]"
NO_CHROMIUM = "chromium-headless-shell is not installed (apt-get install chromium-headless-shell); .ci/run installs it"


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen


@contextmanager
def streamlit_server(env: dict[str, str], port: int | None = None, log: Path | None = None,
                     app_path: Path = ROOT / "app.py") -> Iterator[RunningApp]:
    port = port or free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(app_path), "--server.port", str(port),
               "--server.headless", "true", "--server.address", "127.0.0.1"]
    out = log.open("ab") if log else subprocess.DEVNULL
    process = subprocess.Popen(command, cwd=ROOT, env={**clean_env(), **env}, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield RunningApp(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_healthy(url: str, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("streamlit did not become healthy")


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def chromium_available() -> bool:
    return os.path.exists(CHROMIUM)


def watch_chat_messages(page, never: str = "") -> None:
    """Records, after every change to the page, the chat messages it shows (the start of each one's text;
    hidden ones left out), not only when a test looks: a message shown twice for 50 ms is seen. Also
    whether the text `never` was ever visible. Read with `chat_messages_seen` and `never_seen`."""
    page.evaluate("""(never) => {
        window.__messagesSeen = [];
        window.__neverSeen = false;
        const look = () => {
            const shown = [...document.querySelectorAll('[data-testid=stChatMessage]')]
                .filter(message => message.checkVisibility()).map(message => message.innerText.slice(0, 60));
            const seen = window.__messagesSeen;
            if (JSON.stringify(seen[seen.length - 1]) !== JSON.stringify(shown)) seen.push(shown);
            if (never && document.body.innerText.includes(never)) window.__neverSeen = true;
        };
        look();
        new MutationObserver(look).observe(document.body,
            {subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ['class', 'style']});
    }""", never)


def chat_messages_seen(page) -> list[list[str]]:
    """Each state of the chat since `watch_chat_messages`, in order: the start of each message shown."""
    return page.evaluate("window.__messagesSeen")


def never_seen(page) -> bool:
    """The text `watch_chat_messages` was told to look for was never visible."""
    return not page.evaluate("window.__neverSeen")


def shown_once(states: list[list[str]]) -> bool:
    """No state of the chat showed a message twice."""
    return all(len(set(state)) == len(state) for state in states)


SETTINGS_BUTTON = ".st-key-settings_panel [data-testid=stPopoverButton]"


def open_settings(page) -> None:
    """Open the chat's settings panel (a popover beside the model picker, issue 29), unless it is open: the
    temperature, thinking, JSON, persona, system prompt, tools and context are in it."""
    from playwright.sync_api import expect

    button = page.locator(SETTINGS_BUTTON)
    if button.get_attribute("aria-expanded") != "true":
        button.click()
    expect(button).to_have_attribute("aria-expanded", "true")


OPEN_CHAT_ROW = "[class*=st-key-chat_row]:has(.stButton button[kind=secondary])"  # the open chat's row in the list


def open_chat_menu(page, name: str = "Chat options") -> None:
    """Open the open chat's ⋯ menu in the sidebar (issue 30: rename, pin, share, export, delete are there)."""
    from playwright.sync_api import expect

    button = page.locator(OPEN_CHAT_ROW).get_by_role("button", name=name)
    button.click()
    expect(button).to_have_attribute("aria-expanded", "true")
