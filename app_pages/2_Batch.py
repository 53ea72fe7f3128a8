"""Batch: many prompts, or one prompt across settings, against one model at once. Layout only."""
import streamlit as st

from atri.ui.batch_page import batch_page
from atri.ui.config import current_language, load_settings

st.set_page_config(page_title="Atri · Batch", layout="wide")
batch_page(load_settings(), current_language())
