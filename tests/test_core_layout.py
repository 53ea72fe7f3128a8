import pkgutil
import subprocess
import sys

import atri
from tests.conftest import ROOT


def test_atri_core_does_not_import_streamlit():
    modules = sorted(m.name for m in pkgutil.walk_packages(atri.__path__, "atri.")
                     if not m.name.startswith(("atri.ui", "atri.migrations")))
    assert "atri.context.prepare" in modules
    assert len(modules) > 10
    code = f"import sys; import {', '.join(modules)}; print('streamlit' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "False"


def test_every_ui_string_has_both_languages():
    from atri.i18n import STRINGS

    for key, (zh, en) in STRINGS.items():
        assert zh and en, key
