"""Atri: the frame around every page: language, owner, navigation. Layout only; everything else lives in atri/."""
import streamlit as st

from atri.ui.config import current_language
from atri.ui.identity import remember_owner
from atri.ui.nav import language_picker, pages

st.set_page_config(page_title="Atri", page_icon="🐱", layout="centered")

lang = current_language()
page = st.navigation(pages(lang))
language_picker(lang)
remember_owner()
page.run()
