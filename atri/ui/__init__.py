"""Streamlit helpers shared by the pages: the only part of atri that imports streamlit."""
