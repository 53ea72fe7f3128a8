"""The canary: goes red when Streamlit is upgraded or moves an internal that atri/ui/streamlit_workarounds.py
relies on. Re-check each workaround there against the new version, then move CHECKED_ON."""
from __future__ import annotations

from unittest import mock

import pytest
import streamlit

from atri.ui import streamlit_workarounds
from atri.ui.streamlit_workarounds import CHECKED_ON, StreamlitChanged, click_waiting, missing_internals


def test_the_installed_streamlit_is_the_one_the_workarounds_were_checked_on():
    assert streamlit.__version__ == CHECKED_ON, (
        f"Streamlit {streamlit.__version__} is installed; the workarounds were checked on {CHECKED_ON}")


def test_every_internal_the_workarounds_use_is_where_it_was():
    assert missing_internals() == []


def test_a_moved_internal_raises_rather_than_never_seeing_a_click():
    class MovedRequests:  # a later ScriptRequests without the private state click_waiting reads
        pass

    run = mock.Mock(script_requests=MovedRequests())
    with mock.patch.object(streamlit_workarounds, "get_script_run_ctx", return_value=run):
        with pytest.raises(StreamlitChanged):
            click_waiting()
