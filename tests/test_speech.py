"""Read aloud (issue 33): an answer's Markdown becomes the words a listener needs; espeak-ng (installed by
.ci/run from Debian) speaks English and Mandarin as WAV audio of a plausible length, offline; with a DashScope
key the provider's voice (qwen3-tts-flash, through the fake) reads it, and this server's when that fails."""
import io
import wave

import pytest

from atri.speech import MAX_SPOKEN_CHARS, speak, speech_available, spoken_text
from tests.conftest import new_app
from tests.fake_provider import compatible_url

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


@pytest.fixture
def app(dashscope_env, monkeypatch):
    """The chat on DashScope at a compatible-mode base URL, from which its own protocol (speech) is reached."""
    import streamlit as st

    monkeypatch.setenv("DASHSCOPE_BASE_URL", compatible_url(dashscope_env))
    st.cache_resource.clear()
    st.cache_data.clear()
    return new_app().run()


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
    [spoken] = dashscope_env.speech_requests
    assert spoken["model"] == "qwen3-tts-flash" and spoken["input"]["text"].startswith("Echo: Say hello"), \
        "read by the provider's voice"
    app.run()
    assert len(dashscope_env.speech_requests) == 1, "drawn again without speaking (nor paying) again"


def test_when_the_providers_voice_fails_this_servers_reads_it(app, dashscope_env):
    from tests.test_app import send

    dashscope_env.speech_down = True
    send(app, "Say hello")
    next(b for b in app.button if b.key and b.key.startswith("read_aloud::")).click().run()
    assert any("this server's voice reads it instead" in c.value for c in app.caption)
    assert len(app.get("audio")) == 1 and app.get("audio")[0].proto.url
