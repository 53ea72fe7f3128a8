"""Voice in and out with the provider (issue 33). In: a recording from the chat box becomes the question's
text, put back in the box for the visitor to check and send. Out: an answer read aloud by the provider's speech
model (DashScope: qwen3-tts-flash over its own protocol, atri.dashscope_native), when it has one; atri.speech
reads it on this machine otherwise.

The provider's transcription model hears it (DashScope: qwen3-asr-flash, over the OpenAI-compatible Chat
Completions: the recording as an `input_audio` part, the transcript as the answer), through atri.calls like every
request: admitted and charged on the connection's meter. No speech-recognition model ships in a package this
machine's registries offer that fits (checked 2026-12: whisper weights on PyPI only as third-party uploads), so
the embedded provider offers no microphone.

A recording is checked from its WAV header before anything is sent: DashScope takes at most 10 MB and 5 minutes.
"""
from __future__ import annotations

import base64
import io
import re
import wave

from .calls import send
from .dashscope_native import can_speak
from .errors import ChatError
from .isolation import Refusal
from .request import RequestPlan
from .settings import Connection

MAX_RECORDING_BYTES = 10 * 1024 * 1024
MAX_RECORDING_S = 300


class VoiceProblem(Refusal):
    """A recording that is not sent, or speech that is not asked for: `key` names the i18n message, `values`
    fill it."""


def recording_seconds(wav: bytes) -> float:
    """The recording's length as its WAV header states it, before anything is sent; raises VoiceProblem
    for a file too big or too long, or one that is not a WAV."""
    if len(wav) > MAX_RECORDING_BYTES:
        raise VoiceProblem("recording_too_big", limit=MAX_RECORDING_BYTES // (1024 * 1024))
    try:
        with wave.open(io.BytesIO(wav)) as audio:
            seconds = audio.getnframes() / audio.getframerate()
    except (wave.Error, EOFError, ZeroDivisionError):
        raise VoiceProblem("recording_unreadable") from None
    if seconds > MAX_RECORDING_S:
        raise VoiceProblem("recording_too_long", seconds=round(seconds), limit=MAX_RECORDING_S)
    return seconds


def transcription_request(model_id: str, wav: bytes) -> RequestPlan:
    data_url = "data:audio/wav;base64," + base64.b64encode(wav).decode("ascii")
    return RequestPlan({"model": model_id, "stream": True, "stream_options": {"include_usage": True},
                        "messages": [{"role": "user", "content": [
                            {"type": "input_audio", "input_audio": {"data": data_url}}]}]})


def transcribe(conn: Connection, wav: bytes) -> str:
    """The words of a recording, heard by the connection's provider. Raises VoiceProblem (checked before
    sending; also when the provider has no transcription model) or ChatError (the provider's refusal)."""
    model_id = conn.provider.transcription_model
    if model_id is None:
        raise VoiceProblem("recording_no_model")
    recording_seconds(wav)
    turn = send(conn, transcription_request(model_id, wav))
    if turn.error is not None:
        raise turn.error
    return turn.content.strip()


SPEECH_RATE = 24_000  # qwen3-tts-flash streams 24 kHz 16-bit mono PCM
SPEECH_PIECE_CHARS = 500  # one request's text: DashScope takes at most 600 characters
SPEECH_VOICE = "Cherry"  # speaks Chinese and English
SPEECH_LANGUAGES = {"zh": "Chinese", "en": "English"}
_SENTENCE_END = re.compile(r"(?<=[。！？；.!?;\n])")


def speech_pieces(text: str, size: int = SPEECH_PIECE_CHARS) -> list[str]:
    """The text in pieces of at most `size` characters, cut after a sentence where one ends in time."""
    pieces, current = [], ""
    for sentence in _SENTENCE_END.split(text):
        for start in range(0, len(sentence), size):  # a sentence longer than a piece is cut where it must be
            part = sentence[start:start + size]
            if len(current) + len(part) > size:
                pieces.append(current)
                current = ""
            current += part
    pieces.append(current)
    return [piece for piece in pieces if piece.strip()]


def speech_request(model_id: str, text: str, lang: str) -> RequestPlan:
    return RequestPlan({"model": model_id, "stream": True, "messages": [{"role": "user", "content": text}],
                        "extra_body": {"voice": SPEECH_VOICE, "language_type": SPEECH_LANGUAGES.get(lang, "Auto")}})


def speak_with_provider(conn: Connection, text: str, lang: str) -> bytes:
    """A WAV of `text` read by the connection's speech model, piece by piece. Raises VoiceProblem when the
    provider has none (or it is out of reach from this base URL), ChatError when it refuses."""
    model_id = conn.provider.speech_model
    if model_id is None or not can_speak(conn):
        raise VoiceProblem("speech_no_model")
    pcm = bytearray()
    for piece in speech_pieces(text):
        turn = send(conn, speech_request(model_id, piece, lang))
        if turn.error is not None:
            raise turn.error
        if not turn.audio:
            raise ChatError("stream_error", "the speech model sent no audio")
        pcm += turn.audio
    out = io.BytesIO()
    with wave.open(out, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(SPEECH_RATE)
        audio.writeframes(bytes(pcm))
    return out.getvalue()

