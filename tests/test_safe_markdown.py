"""Markdown from models and visitors: no image loads by itself, labels are plain text (issue 14, item 2)."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from mdit_py_plugins.footnote import footnote_plugin

from atri.safe_markdown import (
    IMAGE_MARK,
    as_streamlit_reads,
    clip_long_strings,
    convert_math,
    defuse_images,
    for_streamlit,
    has_images,
    plain_text,
)

PARSER = MarkdownIt("commonmark").enable(["table", "strikethrough"]).use(footnote_plugin)
SPY = "http://spy/x.png"

# Read differently by Streamlit's renderer (remark with GFM footnotes, math, directives; text dedented first)
# than by markdown-it: each drew an image in a real browser before (tests/test_browser_hostile.py).
STREAMLIT_ONLY = {
    "footnote": f"see[^1]\n\n[^1]: ![f]({SPY})",
    "footnote label in another case": f"x[^A]\n\n[^a]: ![f]({SPY})",
    "footnote continued by indentation": f"x[^1]\n\n[^1]: text\n\n    ![f]({SPY})",
    "inline math hiding a backtick": f"$`$ ![m]({SPY}) $`$",
    "math block hiding a fence": f"$$\n```\n$$\n![m]({SPY})\n$$\n```\n$$",
    "text directive hiding a backtick": f":red[`]![t]({SPY})`",
    "container directive closing a fence": f":::x\n```\n:::\n![c]({SPY})\n```",
    "every line indented (st.markdown dedents)": f"    ![i]({SPY})\n    more",
    "tab-indented": f"\t![i]({SPY})",
}


def rendered(text: str) -> str:
    """As st.markdown would draw it, as far as markdown-it can tell."""
    return PARSER.render(as_streamlit_reads(text))


def test_every_kind_of_image_becomes_a_link_to_it():
    for source in ["![s](http://spy/x.png?d=secret)", "see ![s][ref]\n\n[ref]: http://spy/x.png",
                   "[![inner](http://spy/i.png)](http://example.com)", "| a |\n|---|\n| ![t](http://spy/t.png) |",
                   "**![bold](http://spy/b.png)**"]:
        html = rendered(defuse_images(source))
        assert "<img" not in html and 'href="http://spy/' in html, source


def test_code_and_text_without_images_are_left_exactly_as_written():
    for source in ["plain **bold** [link](http://x)", "`![not an image](x)` in code", "```\n![in a fence](x)\n```",
                   "text\n\n    ![indented code](x)", "escaped \\![not](x)", "数学 $x^2$ 和 `code`", "  indented  "]:
        assert defuse_images(source) == source
    mixed = "`![kept](a)` then ![changed](http://spy/b)"
    assert defuse_images(mixed).startswith("`![kept](a)` then ") and not has_images(defuse_images(mixed))


@pytest.mark.parametrize("name", STREAMLIT_ONLY)
def test_images_that_only_streamlit_would_draw_become_links_too(name):
    defused = defuse_images(STREAMLIT_ONLY[name])
    assert IMAGE_MARK + "[" in defused and "![" not in defused


def test_images_in_code_stay_when_math_elsewhere_cannot_reach_the_code():
    source = "cost: $5\n\n```\n![kept](x)\n```\n\n![changed](http://spy/b)"
    assert "```\n![kept](x)\n```" in defuse_images(source) and not has_images(defuse_images(source))


def test_plain_text_shows_markdown_literally():
    for label in ["![x](http://spy/)", "**bold** _it_", ":red[colour] :material/home:", "- a list", "1. first",
                  "# heading", "<b>html</b>", "[link](http://x)", "a\nb"]:
        html = rendered(plain_text(label))
        assert "<img" not in html and "<a " not in html and "<strong>" not in html and "<em>" not in html
        assert "<li>" not in html and "<h1>" not in html and "<b>" not in html, label


def test_long_strings_are_clipped_for_display_with_how_much_is_left():
    shown = clip_long_strings({"messages": [{"content": "x" * 5000}], "n": 1}, limit=100)
    assert shown["messages"][0]["content"].endswith("… (4,900 more characters)") and shown["n"] == 1


PIECES = list("![]()<>`*_~\\:#-1. \nabc/hs$|\t\r") + ["```", "$$", ":::", ":red[", "[^a]", "[^a]:", "    ", "> ", "- ",
                                                       "![i](http://spy/i.png)", "![r]", "[r]: http://spy/r.png"]
markdownish = st.lists(st.sampled_from(PIECES) | st.characters(), max_size=60).map("".join)


@settings(max_examples=400, deadline=None)
@given(markdownish)
def test_no_text_renders_an_image_after_defusing(text):
    assert "<img" not in rendered(defuse_images(text))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_text_without_an_image_start_is_unchanged(text):
    if "![" not in text:
        assert defuse_images(text) == text


@settings(max_examples=300, deadline=None)
@given(markdownish)
def test_no_label_renders_markup(text):
    html = rendered(plain_text(text))
    assert "<img" not in html and "<a " not in html and "<li>" not in html


# Math as Qwen and DeepSeek write it (issue 11): converted for Streamlit's KaTeX, code left exactly as written.

def test_latex_delimiters_become_dollars_for_katex():
    assert convert_math(r"The area is \( \pi r^2 \) here.") == r"The area is $\pi r^2$ here."
    assert convert_math("Formula:\n\\[\nE = mc^2\n\\]\ndone") == "Formula:\n$$\nE = mc^2\n$$\ndone"
    assert convert_math("\\[ a^2 + b^2 \\]") == "$$\na^2 + b^2\n$$"
    assert convert_math("so \\[ x \\] inline") == "so $$x$$ inline"
    assert convert_math("> \\[\n> x\n> \\]") == "> $$\n> x\n> $$"
    assert convert_math("1. item\n   \\[ x^2 \\]") == "1. item\n   $$\n   x^2\n   $$"


def test_math_in_code_blocks_and_code_spans_is_untouched():
    assert convert_math("`\\(x\\)` and \\(y\\)") == "`\\(x\\)` and $y$"
    fenced = "```latex\n\\(x\\) \\[y\\]\n```\n\\(z\\)"
    assert convert_math(fenced) == "```latex\n\\(x\\) \\[y\\]\n```\n$z$"
    assert convert_math("text\n\n    \\(indented code\\)\n\n\\(w\\)").endswith("    \\(indented code\\)\n\n$w$")


def test_tables_keep_their_shape_and_get_their_math():
    table = "| a | b |\n|---|---|\n| \\(x\\) | `\\(y\\)` |"
    converted = convert_math(table)
    assert converted == "| a | b |\n|---|---|\n| $x$ | `\\(y\\)` |"
    assert "<table>" in rendered(converted) and "<code>\\(y\\)</code>" in rendered(converted)


def test_what_is_not_math_is_left_alone():
    for text in ["\\\\(x\\\\)", "\\(\\)", "a \\(x\n\ny\\)", "plain (x) [y]", "cost $5", "[link](x)"]:
        assert convert_math(text) == text


def test_images_stay_links_after_math_is_converted():
    shown = for_streamlit(f"\\(x\\) ![spy]({SPY})")
    assert shown.startswith("$x$") and "<img" not in rendered(shown)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES + ["\\(", "\\)", "\\[", "\\]", "x^2"]) | st.characters(), max_size=60).map("".join))
def test_no_text_renders_an_image_after_math_and_defusing(text):
    assert "<img" not in rendered(for_streamlit(text))
