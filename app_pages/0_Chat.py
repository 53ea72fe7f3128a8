"""The chat page. Layout only; everything else lives in atri/."""
import streamlit as st

from atri.i18n import t
from atri.ui.chat import conversation, open_view, start_pending_answer
from atri.ui.chat_turn import turn
from atri.ui.composer import composer_switches
from atri.ui.config import current_language, load_settings
from atri.ui.conversations import conversation_sidebar
from atri.ui.documents_panel import conversation_documents, documents_sidebar
from atri.ui.sidebar import render_sidebar

lang = current_language()
with st.container():  # all that is above the turn, as one element: the turn keeps its place (see `turn`)
    view = open_view(lang)
    conversation_sidebar(lang, view)
    documents = conversation_documents(view)
    documents_sidebar(lang, view, documents)
    setup = render_sidebar(load_settings(), lang, view)
    start_pending_answer(setup)

    st.title(t(lang, "app_title"))
    conversation(lang, documents)
composer_switches(lang)
turn(lang, offline=setup.provider.embedded)
