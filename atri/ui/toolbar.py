"""Each message's toolbar: copy, the message's own actions, and its details behind one small control.

Streamlit (checked on 1.67) has no button that copies a given text and no icon-only button, so two small
workarounds live here and nowhere else:

- The copy button is a sanitised `st.html` button holding the message's Markdown in a data attribute; the
  page's script (atri/ui/browser_script.py) copies it on a click. A Streamlit button would rerun the script to
  copy; `st.code`'s own copy button would show the whole text a second time.
- The toolbar's buttons keep their labels for screen readers and tests (`get_by_role("button", name=...)`)
  but show only their icons: CSS on Streamlit's `stMarkdownContainer` inside the keyed containers below.
  If Streamlit renames those, the browser tests that measure a message's height and click by name fail.
"""
from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import streamlit as st

SHOW_DETAILS = "show_details_always"  # the sidebar's switch: every answer's details shown, not folded
ICON_ONLY_PREFIX = "icons_"
TOOLBAR_PREFIX = "toolbar_"
LAST_TOOLBAR_PREFIX = "toolbar_last_"

# Streamlit's own icon font (its Material Symbols, loaded for every page): the sanitiser drops inline SVG.
_COPY_ICON = '<span class="atri-icon atri-todo" aria-hidden="true">content_copy</span>'
_DONE_ICON = '<span class="atri-icon atri-done" aria-hidden="true">check</span>'

STYLE = f"""<style>
[class*="st-key-{TOOLBAR_PREFIX}"] {{ margin-top: -0.5rem; }}
[class*="st-key-{TOOLBAR_PREFIX}"] button {{ min-height: 2rem; padding: 0 0.45rem; }}
[class*="st-key-{TOOLBAR_PREFIX}"] [data-testid="stCaptionContainer"] {{ padding: 0 0.1rem; }}
[class*="st-key-{ICON_ONLY_PREFIX}"] button [data-testid="stMarkdownContainer"] {{
    position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }}
[class*="st-key-{ICON_ONLY_PREFIX}"] [data-testid="stPopoverButton"] div[aria-hidden="true"] {{ display: none; }}
.atri-copy {{ display: inline-flex; align-items: center; justify-content: center; height: 2rem; width: 2rem;
    border: none; border-radius: 0.5rem; background: transparent; color: inherit; opacity: 0.7; cursor: pointer; }}
.atri-copy:hover, .atri-copy:focus-visible {{ opacity: 1; background: rgba(128, 128, 128, 0.15); }}
.atri-icon {{ font-family: "Material Symbols Rounded"; font-size: 1.25rem; line-height: 1; font-weight: 400;
    -webkit-font-feature-settings: "liga"; font-feature-settings: "liga"; }}
.atri-copy .atri-done, .atri-copy.atri-copied .atri-todo {{ display: none; }}
.atri-copy.atri-copied .atri-done {{ display: inline; }}
[data-testid="stChatMessage"] ol > li {{ margin-left: 1.75em; }}
[data-testid="stChatMessage"] :is(h1, h2, h3, h4, h5, h6) {{ padding: 0.6em 0 0.25em; line-height: 1.3; }}
[data-testid="stChatMessage"] h1 {{ font-size: 1.4rem; }}
[data-testid="stChatMessage"] h2 {{ font-size: 1.25rem; }}
[data-testid="stChatMessage"] h3 {{ font-size: 1.1rem; }}
[data-testid="stChatMessage"] :is(h4, h5, h6) {{ font-size: 1rem; }}
@media (max-width: 640px) {{  /* a phone: the model bar on one line, its settings button an icon */
    .st-key-settings_panel [data-testid="stPopoverButton"] [data-testid="stMarkdownContainer"] {{
        position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }}
    .st-key-model_bar {{ flex-wrap: nowrap; }}
    .st-key-model_bar > div {{ min-width: 0; }}
}}
@media (hover: hover) and (pointer: fine) {{
    [data-testid="stChatMessage"]:not(:hover):not(:focus-within)
        [class*="st-key-{TOOLBAR_PREFIX}"]:not([class*="st-key-{LAST_TOOLBAR_PREFIX}"]) {{ opacity: 0; }}
}}
</style>"""

def toolbar_style() -> None:
    """The toolbar's style, and the answers' own: an ordered list's "10." inside the message's column, headings
    a step below the page title (Streamlit's are as large as it). Drawn on every page run (a style alone goes
    to Streamlit's event container: it takes no place)."""
    st.html(STYLE)


def show_details_always() -> bool:
    return bool(st.session_state.get(SHOW_DETAILS, False))


def copy_button(text: str, label: str) -> None:
    """A button that puts `text` on the clipboard, in the browser alone (no rerun)."""
    label = html.escape(label, quote=True)
    st.html(f'<button type="button" class="atri-copy" title="{label}" aria-label="{label}" '
            f'data-copy="{html.escape(text, quote=True)}">{_COPY_ICON}{_DONE_ICON}</button>', width="content")


@contextmanager
def toolbar(key: str, last: bool) -> Iterator[None]:
    """A row of small controls under a message: shown on hover with a mouse, always on touch screens and
    under the conversation's last message."""
    prefix = LAST_TOOLBAR_PREFIX if last else TOOLBAR_PREFIX
    with st.container(horizontal=True, key=f"{prefix}{key}", vertical_alignment="center", gap="xxsmall"):
        yield


@contextmanager
def icon_only(key: str) -> Iterator[None]:
    """Buttons drawn here show their icon; their label stays for screen readers."""
    with st.container(horizontal=True, key=f"{ICON_ONLY_PREFIX}{key}", vertical_alignment="center", gap="xxsmall",
                      width="content"):
        yield


def details_popover(label: str, key: str, body: Callable[[], None]) -> None:
    """The message's facts, context and raw views, folded behind one small control in its toolbar."""
    with st.popover(label, icon=":material/info:", type="tertiary", key=f"details_{key}"):
        body()
