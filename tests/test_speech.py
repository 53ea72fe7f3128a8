"""Read aloud, offline (issue 33): an answer's Markdown becomes the words a listener needs, and espeak-ng
(installed by .ci/run from Debian) speaks English and Mandarin as WAV audio of a plausible length."""
import io
import wave

import pytest

from atri.speech import MAX_SPOKEN_CHARS, speak, speech_available, spoken_text

pytestmark = pytest.mark.skipif(not speech_available(), reason="espeak-ng is not installed (.ci/run installs it)")


def seconds_of(wav: bytes) -> float:
    with wave.open(io.BytesIO(wav)) as audio:
        return audio.getnframes() / audio.getframerate()


def test_markdown_is_read_as_words():
    answer = ("## Steps\n\nRun **this** [command](https://example.com):\n\n```bash\nrm -rf /tmp/x\n```\n\n"
              "| a | b |\n|---|---|\n| 1 | 2 |\n\nDone, `ok`.")
    heard = spoken_text(answer, code_block="(a code block)")
    assert heard.splitlines() == ["Steps", "Run this command:", "(a code block)", "a", "b", "1", "2", "Done, ok."]
    assert len(spoken_text("word " * 5000)) == MAX_SPOKEN_CHARS


def test_english_and_mandarin_are_spoken():
    english = speak("The weather in Paris will be sunny tomorrow.", "en")
    chinese = speak("明天北京的天气很好。", "zh")
    assert english.startswith(b"RIFF") and chinese.startswith(b"RIFF")
    assert 1.5 < seconds_of(english) < 8 and 1.0 < seconds_of(chinese) < 8


def test_an_answers_speaker_button_plays_it_under_the_answer(app, dashscope_env):
    from tests.test_app import send

    send(app, "Say hello")
    answer_id = app.session_state["reading_aloud"] if "reading_aloud" in app.session_state else None
    assert answer_id is None and not app.get("audio"), "nothing is spoken before the visitor asks"
    button = next(b for b in app.button if b.key and b.key.startswith("read_aloud::"))
    button.click().run()
    audio = app.get("audio")
    assert len(audio) == 1, "the answer's speech, under it"
    assert audio[0].proto.autoplay
    assert audio[0].proto.url, "a playable source"
