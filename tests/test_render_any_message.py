"""Any message that validates renders without an error and without loading an image (issue 14)."""
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from atri.messages import InvalidData, Message
from atri.safe_markdown import has_images


def render_page() -> None:
    import json

    import streamlit as st

    from atri.messages import Message
    from atri.ui.render import show_message

    message = Message.from_dict(json.loads(st.session_state["message"]))
    show_message("en", message, {}, recent=True)


pieces = st.sampled_from(list("![]()<>`*_~\\:#-1. \n\x00abc/中") + ["![s](http://127.0.0.1:9/p.png)", "```\n"])
texts = st.lists(pieces, max_size=60).map("".join)
messages = st.fixed_dictionaries({
    "role": st.sampled_from(["user", "assistant"]),
    "content": texts,
    "reasoning": texts,
    "facts": st.one_of(st.none(), st.fixed_dictionaries({
        "model": texts.map(lambda text: text[:200]),
        "error_kind": st.one_of(st.none(), st.sampled_from(["stopped", "auth", "unreadable", "weird_kind"])),
        "error_detail": st.one_of(st.none(), texts),
        "finish_reason": st.one_of(st.none(), st.sampled_from(["stop", "length", "content_filter"])),
        "usage": st.one_of(st.none(), st.fixed_dictionaries({"prompt_tokens": st.integers(0, 10**9)})),
        "request": st.one_of(st.none(), st.fixed_dictionaries({"messages": st.lists(
            st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]), "content": texts}), max_size=3)})),
    })),
})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_any_valid_message_renders_cleanly_and_loads_no_image(data):
    try:
        Message.from_dict(data)
    except InvalidData:
        return
    at = AppTest.from_function(render_page, default_timeout=30)
    at.session_state["message"] = json.dumps(data)
    at.run()
    assert not at.exception, at.exception
    shown = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
    assert not any(has_images(text) for text in shown)
