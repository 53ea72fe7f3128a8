"""Streamlit's own English on a Chinese page, put in the visitor's language by CSS where Streamlit (checked on 1.67)
offers no option: the file uploader's "Upload" button and its "50MB per file • JSON" line, and a text field's
"Press Enter to apply / submit form" hint, and the ⋮ menu's theme switch. The English stays in the page at font-size 0 (for Streamlit's own
layout) and our text is drawn in its place by `::after`. It leans on Streamlit's `stFileUploaderDropzone`,
`stFileUploaderDropzoneInstructions`, `InputInstructions`, `stForm` and `stTextArea` test ids and on the
`st-key-…` class of a keyed uploader; tests/test_browser_chat_surface.py fails if they move.
"""
from __future__ import annotations

import streamlit as st

from atri.i18n import t
from atri.ui.session import IMPORT_FILE
from atri.ui.streamlit_workarounds import HEADER_STOP_HIDDEN

# The file types a keyed uploader takes, as its line says them (Streamlit's line lists them after the size, in
# the one text node this style replaces); an uploader not named here says only the size.
UPLOADER_TYPES = {IMPORT_FILE: "JSON"}


def _css_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _replaced(selector: str, text: str, size: str) -> str:
    return (f"{selector} {{ font-size: 0 !important; }}\n"
            f"{selector}::after {{ content: {_css_string(text)}; font-size: {size}; }}\n")


def style(lang: str) -> str:
    """The page's style for `lang`: in English only the header's Stop hidden."""
    if lang == "en":
        return f"<style>\n{HEADER_STOP_HIDDEN}</style>"
    megabytes = st.get_option("server.maxUploadSize")
    per_file = t(lang, "uploader_per_file", mb=megabytes)
    dropzone = '[data-testid="stFileUploaderDropzone"]'
    lines = _replaced(f'{dropzone} button [data-testid="stMarkdownContainer"] p', t(lang, "uploader_button"), "0.875rem")
    lines += _replaced('[data-testid="stFileUploaderDropzoneInstructions"] span', per_file, "0.875rem")
    for key, types in UPLOADER_TYPES.items():
        lines += (f'.st-key-{key} [data-testid="stFileUploaderDropzoneInstructions"] span::after '
                  f'{{ content: {_css_string(t(lang, "uploader_types", types=types, per_file=per_file))}; }}\n')
    hint = '[data-testid="InputInstructions"]'
    lines += _replaced(hint, t(lang, "input_hint_apply"), "0.75rem")
    lines += f'[data-testid="stTextArea"] {hint}::after {{ content: {_css_string(t(lang, "input_hint_apply_multiline"))}; }}\n'
    lines += f'[data-testid="stForm"] {hint}::after {{ content: {_css_string(t(lang, "input_hint_submit"))}; }}\n'
    lines += _main_menu(lang)
    return f"<style>\n{HEADER_STOP_HIDDEN}{lines}</style>"


def _main_menu(lang: str) -> str:
    """The ⋮ menu (toolbarMode "viewer"): its light/dark switch in the visitor's language (each label a text node
    beside its icon, whose size is set again), and its Print and Record screen."""
    lines = ""
    for theme in ("System", "Light", "Dark"):
        item = f'[data-testid="stMainMenuItem-theme-{theme}"]'
        lines += _replaced(item, t(lang, f"theme_{theme.lower()}"), "0.875rem")
        lines += f'{item} [data-testid="stIconMaterial"] {{ font-size: 1.25rem; }}\n{item}::after {{ white-space: nowrap; }}\n'
    for item, key in (("print", "menu_print"), ("recordScreencast", "menu_record_screen")):
        lines += _replaced(f'[data-testid="stMainMenuItem-{item}"] [data-testid="stMainMenuItemLabel"]', t(lang, key),
                           "0.875rem")
    return lines


def streamlit_strings(lang: str) -> None:
    """Drawn on every run of every page, always as one element (a style alone takes no place)."""
    st.html(style(lang))
