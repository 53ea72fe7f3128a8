"""Voice in, in a real browser (issue 33): Chromium's fake microphone plays a WAV file (the question spoken by
espeak-ng); the chat box's recording goes to the provider's transcription model, and the words heard land in
the chat box, after what was typed, for the visitor to check before sending (or are sent at once)."""
from __future__ import annotations

import math
import struct
import wave

import pytest
from playwright.sync_api import expect, sync_playwright

from atri.speech import speak, speech_available
from tests.browser import CHROMIUM, CHROMIUM_ARGS, IDLE, NO_CHROMIUM, chromium_available, open_settings, streamlit_server
from tests.fake_provider import HEARD
from tests.test_browser_persistence import env_for

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not chromium_available(), reason=NO_CHROMIUM)]
DESKTOP = {"width": 1280, "height": 900}


def spoken(path) -> None:
    """The question said aloud by espeak-ng (as a visitor would say it), or a tone where it is not installed."""
    if speech_available():
        path.write_bytes(speak(HEARD, "en"))
    else:
        tone(path)


def tone(path, seconds: float = 3.0, rate: int = 16_000) -> None:
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        samples = (int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(seconds * rate)))
        audio.writeframes(b"".join(struct.pack("<h", s) for s in samples))


def test_a_recording_from_the_chat_box_is_put_in_the_box_as_text(fake_server, tmp_path):
    voice = tmp_path / "voice.wav"
    spoken(voice)
    microphone = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-audio-capture={voice}"]
    with streamlit_server(env_for(fake_server, f"sqlite:///{tmp_path / 'atri.db'}")) as app, \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=microphone)
        context = browser.new_context(locale="en-US", viewport=DESKTOP, permissions=["microphone"])
        page = context.new_page()
        page.goto(app.url)
        page.wait_for_selector(IDLE, timeout=60_000)
        box = page.get_by_test_id("stChatInputTextArea")
        box.fill("Please answer:")
        page.get_by_role("button", name="Start recording").click()
        page.wait_for_timeout(1_500)
        page.get_by_role("button", name="Submit recording").click()
        expect(box).to_have_value(f"Please answer: {HEARD}", timeout=20_000)
        assert [r["model"] for r in fake_server.requests] == ["qwen3-asr-flash"], "heard, not yet asked"
        browser.close()


def test_with_send_at_once_on_what_was_said_is_asked(fake_server, tmp_path):
    voice = tmp_path / "voice.wav"
    spoken(voice)
    microphone = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-audio-capture={voice}"]
    with streamlit_server(env_for(fake_server, f"sqlite:///{tmp_path / 'atri.db'}")) as app, \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=microphone)
        page = browser.new_context(locale="en-US", viewport=DESKTOP, permissions=["microphone"]).new_page()
        page.goto(app.url)
        page.wait_for_selector(IDLE, timeout=60_000)
        open_settings(page)
        page.get_by_test_id("stPopoverBody").get_by_text("Send what I say at once").click()
        page.keyboard.press("Escape")
        page.wait_for_selector(IDLE, timeout=20_000)
        page.get_by_role("button", name="Start recording").click()
        page.wait_for_timeout(1_500)
        page.get_by_role("button", name="Submit recording").click()
        expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text(f"Echo: {HEARD}", timeout=30_000)
        expect(page.get_by_test_id("stChatInputTextArea")).to_have_value("")
        browser.close()

