import subprocess
import sys

from tests.conftest import ROOT


def test_atri_core_does_not_import_streamlit():
    modules = ["atri.messages", "atri.providers", "atri.settings", "atri.request", "atri.stream", "atri.client",
               "atri.turn", "atri.local", "atri.i18n", "atri.images", "atri.errors", "atri.tokens"]
    code = f"import sys; import {', '.join(modules)}; print('streamlit' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "False"


def test_every_ui_string_has_both_languages():
    from atri.i18n import STRINGS

    for key, (zh, en) in STRINGS.items():
        assert zh and en, key
