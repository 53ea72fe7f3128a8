"""Extract: images or text to JSON that matches a schema. Layout only."""
import streamlit as st

from atri.ui.config import current_language, load_settings
from atri.ui.extract_page import extract_page

st.set_page_config(page_title="Atri · Extract", layout="wide")
extract_page(load_settings(), current_language())
