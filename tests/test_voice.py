"""Voice in (issue 33): a recording becomes the question's text, heard by the provider's transcription model
over DashScope's documented shape (qwen3-asr-flash: an `input_audio` part in, the transcript as the answer).
Sizes a visitor controls are checked before anything is sent."""
from __future__ import annotations

import io
import struct
import wave

import pytest

from atri.errors import ChatError
from atri.providers import catalogue
from atri.settings import Connection
from atri.voice import MAX_RECORDING_BYTES, SPEECH_PIECE_CHARS, VoiceProblem, speak_with_provider, transcribe
from tests.fake_provider import GOOD_KEY, HEARD, SPEECH_S_PER_CHAR, compatible_url


def wav(seconds: float, rate: int = 16_000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        audio.writeframes(b"\x01\x00" * int(seconds * rate))
    return out.getvalue()


def dashscope(fake) -> Connection:
    return Connection(catalogue()["dashscope"], fake.base_url, GOOD_KEY)


def test_a_recording_comes_back_as_the_words_heard(fake):
    assert transcribe(dashscope(fake), wav(1.5)) == HEARD
    request = fake.requests[-1]
    assert request["model"] == "qwen3-asr-flash"
    part = request["messages"][-1]["content"][0]
    assert part["type"] == "input_audio" and part["input_audio"]["data"].startswith("data:audio/wav;base64,")


def test_a_silent_recording_gives_no_words(fake):
    assert transcribe(dashscope(fake), wav(0)) == ""


@pytest.mark.parametrize(("recording", "problem"), [
    (b"RIFF" + b"\x00" * (MAX_RECORDING_BYTES + 1), "recording_too_big"),
    (wav(301, rate=8_000), "recording_too_long"),
    (b"<html>not audio</html>", "recording_unreadable"),
    # a header that claims an hour of sound in a few bytes: its stated length is what counts, and is refused
    (wav(0)[:40] + struct.pack("<I", 3600 * 32_000), "recording_too_long"),
])
def test_a_recording_too_big_too_long_or_not_audio_is_refused_before_sending(fake, recording, problem):
    with pytest.raises(VoiceProblem) as refused:
        transcribe(dashscope(fake), recording)
    assert refused.value.key == problem
    assert fake.requests == []


def test_a_provider_without_a_transcription_model_offers_no_microphone(fake):
    openai = Connection(catalogue()["openai"], fake.base_url, GOOD_KEY)
    with pytest.raises(VoiceProblem) as refused:
        transcribe(openai, wav(1))
    assert refused.value.key == "recording_no_model"
    assert fake.requests == []


def test_the_providers_refusal_comes_back_as_its_error(fake):
    wrong_key = Connection(catalogue()["dashscope"], fake.base_url, "sk-not-this-one")
    with pytest.raises(ChatError) as refused:
        transcribe(wrong_key, wav(1))
    assert refused.value.kind == "auth"


def test_an_answer_is_read_by_the_providers_voice_in_pieces_it_accepts(fake):
    text = "The weather is fine today. " * 40  # 1,080 characters: DashScope takes 600 a request
    spoken = speak_with_provider(Connection(catalogue()["dashscope"], compatible_url(fake), GOOD_KEY), text, "en")
    assert [len(r["input"]["text"]) <= SPEECH_PIECE_CHARS for r in fake.speech_requests] == [True, True, True]
    assert "".join(r["input"]["text"] for r in fake.speech_requests) == text
    assert {r["input"]["language_type"] for r in fake.speech_requests} == {"English"}
    with wave.open(io.BytesIO(spoken)) as audio:
        assert audio.getframerate() == 24_000
        assert abs(audio.getnframes() / 24_000 - len(text) * SPEECH_S_PER_CHAR) < 0.1, "every piece, in order"


@pytest.mark.parametrize("provider", ["openai", "dashscope"])
def test_a_provider_without_a_voice_in_reach_is_not_asked(fake, provider):
    """OpenAI has no speech model here; DashScope behind a Chat-Completions-only proxy (`…/v1`) has one out of reach."""
    with pytest.raises(VoiceProblem) as refused:
        speak_with_provider(Connection(catalogue()[provider], fake.base_url, GOOD_KEY), "hi", "en")
    assert refused.value.key == "speech_no_model" and fake.speech_requests == [] and fake.requests == []

