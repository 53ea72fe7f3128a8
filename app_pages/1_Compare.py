"""Compare: one question to several models at once. Layout only."""
import streamlit as st

from atri.ui.compare_page import compare_page
from atri.ui.config import current_language, load_settings

st.set_page_config(page_title="Atri · Compare", layout="wide")
compare_page(load_settings(), current_language())
