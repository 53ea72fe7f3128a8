"""Chinese strings read as Chinese: full-width punctuation beside Chinese text, no developer prose."""
from __future__ import annotations

import re
import string

import pytest

from atri.i18n import STRINGS
from atri.personas import PERSONA_PROMPTS, PERSONAS

ASCII_MARKS = ",:()!?;"
# CJK ideographs, CJK punctuation (。、「」…) and full-width forms (，：（）)
CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")


def _literal_parts(text: str) -> list[str]:
    """The text a reader sees, without format fields such as {n:,} or {seconds:.1f}."""
    try:
        return [literal for literal, *_ in string.Formatter().parse(text)]
    except ValueError:  # not a format string: all of it is literal
        return [text]


def ascii_marks_beside_chinese(text: str) -> list[str]:
    """Each ASCII , : ( ) ! ? ; directly before or after a Chinese character, with its neighbours."""
    found = []
    for part in _literal_parts(text):
        for i, ch in enumerate(part):
            if ch not in ASCII_MARKS:
                continue
            before, after = part[i - 1:i], part[i + 1:i + 2]
            if CJK.match(before or " ") or CJK.match(after or " "):
                found.append(part[max(0, i - 4):i + 5])
    return found


def chinese_strings() -> list[tuple[str, str]]:
    named = [(key, zh) for key, (zh, _en) in STRINGS.items()]
    named += [(f"persona {key}", zh) for key, (zh, _en) in PERSONAS.items()]
    named += [(f"persona prompt {key}", zh) for key, (zh, _en) in PERSONA_PROMPTS.items()]
    return named


def test_the_check_sees_ascii_punctuation_beside_chinese_and_ignores_format_fields():
    assert ascii_marks_beside_chinese("请求太频繁(429,每分钟请求数超限)")
    assert ascii_marks_beside_chinese("你好!")
    assert not ascii_marks_beside_chinese("已用 {used:,} / {limit:,} token，用时 {seconds:.1f} 秒")
    assert not ascii_marks_beside_chinese("非 http(s) 链接（如 qwen3-vl-plus）")


@pytest.mark.parametrize("key, text", chinese_strings(), ids=lambda v: v if isinstance(v, str) and v.isascii() else "")
def test_chinese_strings_use_full_width_punctuation_beside_chinese(key, text):
    assert not ascii_marks_beside_chinese(text), f"{key}: ASCII punctuation beside Chinese in {text!r}"


SHOWN_AS_WRITTEN = {"batch_template_help"}  # its braces are the template syntax it explains


def test_every_string_has_both_languages_with_the_same_format_fields():
    for key, (zh, en) in STRINGS.items():
        assert zh and en, key
        if key in SHOWN_AS_WRITTEN:
            continue
        fields = {name for part in (zh, en) for _lit, name, *_ in string.Formatter().parse(part) if name}
        zh_fields = {name for _lit, name, *_ in string.Formatter().parse(zh) if name}
        en_fields = {name for _lit, name, *_ in string.Formatter().parse(en) if name}
        assert zh_fields == en_fields == fields, f"{key}: {zh_fields} vs {en_fields}"


@pytest.mark.parametrize("words", ["首 token", "教程的 AsyncOpenAI", "asyncio.gather", "enable_search"])
def test_chinese_strings_say_things_plainly_not_in_api_names(words):
    assert not [key for key, zh in chinese_strings() if words in zh]
