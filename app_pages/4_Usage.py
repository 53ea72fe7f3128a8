"""Usage: tokens, cost, speed and errors of the stored answers. Layout only."""
import streamlit as st

from atri.ui.config import current_language, load_settings
from atri.ui.usage_page import usage_page

st.set_page_config(page_title="Atri · Usage", layout="wide")
usage_page(load_settings(), current_language())
