"""Counting tokens when the server reports none."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

TokenCounter = Callable[[str], int]

# ChatML wraps each message in <|im_start|>role\n … <|im_end|>\n; the reply is primed with one more.
TOKENS_PER_MESSAGE = 4
TOKENS_PER_REPLY = 3


def rough_count(text: str) -> int:
    """A documented estimate for tokenizers we do not ship: ~1 token per CJK character, ~4 chars otherwise."""
    cjk = sum(1 for ch in text if "\u2e80" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af")
    return cjk + max(0, len(text) - cjk + 3) // 4


def message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content if isinstance(part, dict))


def count_prompt(messages: list[dict[str, Any]], count: TokenCounter) -> int:
    return TOKENS_PER_REPLY + sum(TOKENS_PER_MESSAGE + count(message_text(m["content"])) for m in messages)


def schema_tokens(tools: list[dict[str, Any]] | None, count: TokenCounter) -> int:
    """What the schemas of the tools offered add to a request's input: they go as JSON with every request."""
    return count(json.dumps(tools, ensure_ascii=False)) if tools else 0
