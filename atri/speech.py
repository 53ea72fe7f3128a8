"""Read aloud (issue 33), offline: an answer's Markdown as the words a listener needs (no markup, code
blocks named rather than spelled out), spoken by espeak-ng (Debian's package) in English or Mandarin.

espeak-ng is small and instant, and robotic; no Chinese neural voice ships in a package of the registries
this machine can reach (checked 2026-12: PyPI, Debian, npm). Mandarin uses the `cmn-latn-pinyin` voice:
the plain `cmn` voice reads Han characters with English tone digits ("qing three").
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from markdown_it import MarkdownIt

MAX_SPOKEN_CHARS = 4_000  # four minutes of English, a quarter of an hour of Chinese: a longer answer is read to there
PARSED_CHARS = 4 * MAX_SPOKEN_CHARS
SPEAK_TIMEOUT_S = 20.0
VOICES = {"en": "en-us", "zh": "cmn-latn-pinyin"}
_PARSER = MarkdownIt("commonmark").enable(["table", "strikethrough"])


class SpeechUnavailable(Exception):
    """No speech engine here (espeak-ng is not installed), or it failed; the message says which."""


def spoken_text(markdown: str, code_block: str = "(code)") -> str:
    """What a listener hears of an answer: its words, one paragraph after another; a code block becomes
    `code_block`, links their text, emphasis and tables plain."""
    parts: list[str] = []
    # Only the start is parsed: what is heard ends at MAX_SPOKEN_CHARS, and parsing a whole 2-million-character
    # answer holds this process for a minute (markup is at most a few times the words it wraps).
    for token in _PARSER.parse(markdown[:PARSED_CHARS]):
        if token.type in ("fence", "code_block"):
            parts.append(code_block)
        elif token.type == "inline" and token.children is not None:
            words = "".join(" " if child.type in ("softbreak", "hardbreak") else child.content
                            for child in token.children)
            parts.append(" ".join(words.split()))
    return "\n".join(part for part in parts if part)[:MAX_SPOKEN_CHARS]


def speech_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, lang: str) -> bytes:
    """A WAV of `text` read in `lang` ("en" or "zh"). Raises SpeechUnavailable."""
    engine = shutil.which("espeak-ng")
    if engine is None:
        raise SpeechUnavailable("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory(prefix="atri-speech-") as folder:
        out = Path(folder) / "speech.wav"  # to a file: on stdout the WAV header claims 2 GB of audio
        try:
            done = subprocess.run([engine, "-v", VOICES.get(lang, VOICES["en"]), "-w", str(out), "--stdin"],
                                  input=text[:MAX_SPOKEN_CHARS].encode(), capture_output=True,
                                  timeout=SPEAK_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise SpeechUnavailable("espeak-ng took too long") from None
        wav = out.read_bytes() if out.is_file() else b""
    if done.returncode != 0 or not wav.startswith(b"RIFF"):
        raise SpeechUnavailable(f"espeak-ng failed: {done.stderr.decode(errors='replace')[:200]}")
    return wav
