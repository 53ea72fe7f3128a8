"""The baseline: Streamlit's own "Build a ChatGPT-like app" example, as its docs give it
(session-state list of messages, st.write_stream), pointed at the same OpenAI-compatible server.

Two changes, both for measuring: the base URL and model come from the environment, and `?n=N` starts
the session with N canned messages (the same shapes bench/browser_turn.py stores for Atri).
"""
import os

import streamlit as st
from openai import OpenAI

st.title("ChatGPT-like clone")

client = OpenAI(api_key=os.environ["BENCH_API_KEY"], base_url=os.environ["BENCH_BASE_URL"])

if "openai_model" not in st.session_state:
    st.session_state["openai_model"] = os.environ.get("BENCH_MODEL", "qwen-plus")

if "messages" not in st.session_state:
    from canned import canned_messages  # the measuring change: a long chat to start from

    st.session_state.messages = canned_messages(int(st.query_params.get("n", 0)))

for message in st.session_state.messages:
    with st.chat_message(message["role"]):
        st.markdown(message["content"])

if prompt := st.chat_input("What is up?"):
    st.session_state.messages.append({"role": "user", "content": prompt})
    with st.chat_message("user"):
        st.markdown(prompt)

    with st.chat_message("assistant"):
        stream = client.chat.completions.create(
            model=st.session_state["openai_model"],
            messages=[{"role": m["role"], "content": m["content"]} for m in st.session_state.messages],
            stream=True,
        )
        response = st.write_stream(stream)
    st.session_state.messages.append({"role": "assistant", "content": response})
