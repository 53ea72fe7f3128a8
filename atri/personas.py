"""The personas a chat (and Compare, apart) can take: a name and a system prompt in each language."""
from __future__ import annotations

PERSONAS: dict[str, tuple[str, str]] = {
    "assistant": ("助手", "Assistant"),
    "atri": ("猫娘 Atri（教程里的）", "Atri the cat-girl (the tutorial's)"),
    "translator": ("中英翻译", "zh⇄en translator"),
}
DEFAULT_PERSONA = "assistant"  # neutral, in the visitor's language; the tutorial's cat-girl stays a choice

PERSONA_PROMPTS: dict[str, tuple[str, str]] = {  # (Chinese, English), like STRINGS
    "assistant": ("你是一个乐于助人的助手。回答清楚、简洁，并使用用户所用的语言。",
                  "You are a helpful assistant. Answer clearly and concisely, in the user's language."),
    "atri": ("你是一只可爱的猫娘，名字叫Atri，会软软地对用户喵喵叫",
             "You are a cute cat-girl named Atri who talks softly to the user and meows now and then."),
    "translator": ("你在中文和英文之间互译，只回复译文。",
                   "You translate between Chinese and English. Reply with the translation only."),
}


def persona_prompt(persona: str, lang: str) -> str:
    """The persona's system prompt in the visitor's language."""
    zh, en = PERSONA_PROMPTS.get(persona, PERSONA_PROMPTS[DEFAULT_PERSONA])
    return zh if lang == "zh" else en


def persona_of(prompt: str) -> str | None:
    """The persona whose prompt (in either language) this is, if any."""
    return next((key for key, texts in PERSONA_PROMPTS.items() if prompt in texts), None)
