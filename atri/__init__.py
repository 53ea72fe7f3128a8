"""Atri core: plain Python, no Streamlit (see atri.ui for the Streamlit helpers)."""
