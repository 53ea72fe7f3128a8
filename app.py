"""Atri: the frame around every page: language, access, owner, navigation. Layout only; everything else lives in atri/."""
import streamlit as st

from atri.ui.access import access_form, has_access, remember_access
from atri.ui.config import current_language, load_settings
from atri.ui.identity import remember_owner
from atri.ui.localise import streamlit_strings
from atri.ui.nav import language_picker, pages, public_share
from atri.ui.streamlit_workarounds import settle_heap

st.set_page_config(page_title="Atri", page_icon="🐱", layout="centered")

lang = current_language()
allowed = has_access()
# Navigation before anything is drawn: widgets drawn before it would belong to no page and lose their input.
page = st.navigation(pages(lang), position="sidebar" if allowed else "hidden")
streamlit_strings(lang)  # Streamlit's own English, in the visitor's language (on every page, the access form too)
if allowed:
    language_picker(lang)
    # The same elements on every run: nothing may be drawn above the page on some runs only, or the chat's
    # turn fragment, named after its place, changes name and drops a question sent meanwhile (atri/ui/chat.py).
    remember_access()
    remember_owner()
    page.run()
    settle_heap()
elif public_share(page, load_settings().config.share_links):  # a share link, open to anyone: read-only, no chats
    page.run()
else:
    access_form(lang)
