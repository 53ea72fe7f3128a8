"""Compare: one question to several models at once. Layout only."""
import streamlit as st

from atri.ui.compare_page import compare_page
from atri.ui.config import current_language, load_settings
from atri.ui.nav import navigation
from atri.ui.state import keep_chat_settings

st.set_page_config(page_title="Atri · Compare", page_icon="🐱", layout="wide")

keep_chat_settings()
lang = current_language()
navigation(lang)
compare_page(load_settings(), lang)
