"""Atri: the chat page. Layout only; everything else lives in atri/."""
import streamlit as st

from atri.i18n import t
from atri.ui.chat import answer_pending, chat_input, new_chat, show_history
from atri.ui.config import current_language, load_settings
from atri.ui.sidebar import render_sidebar

st.set_page_config(page_title="Atri", page_icon="🐱", layout="centered")

lang = current_language()
settings = load_settings()
st.sidebar.button(t(lang, "new_chat"), on_click=new_chat, icon=":material/add:", use_container_width=True)
setup = render_sidebar(settings, lang)

st.title(t(lang, "app_title"))
show_history(lang)
chat_input(lang)
answer_pending(setup, lang)
