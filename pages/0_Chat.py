"""The chat page. Layout only; everything else lives in atri/."""
import streamlit as st

from atri.i18n import t
from atri.ui.chat import chat_input, follow_answer, live_to_draw, open_view, show_history, start_pending_answer
from atri.ui.config import current_language, load_settings
from atri.ui.context_panel import conversation_totals
from atri.ui.conversations import conversation_sidebar
from atri.ui.documents_panel import conversation_documents, documents_sidebar
from atri.ui.sidebar import render_sidebar

lang = current_language()
view, live = open_view(lang)
conversation_sidebar(lang, view)
documents = conversation_documents(view)
documents_sidebar(lang, view, documents)
setup = render_sidebar(load_settings(), lang, view)
start_pending_answer(setup, lang)
live = live_to_draw(view, live)

st.title(t(lang, "app_title"))
conversation_totals(lang, view)
show_history(lang, view, live, documents, offline=setup.provider.embedded)
follow_answer(lang, view, live)
chat_input(lang)
