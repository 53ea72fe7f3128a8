"""The chat page's browser script survives Streamlit's sanitiser (atri/ui/browser_script.py)."""
import re

from atri.ui.browser_script import SCRIPT, page_script  # noqa: F401  (importable without a running page)


def test_the_page_script_has_no_markup_inside_that_would_get_it_dropped():
    body = SCRIPT.removeprefix("<script>").removesuffix("</script>")
    assert not re.search(r"<[/\w]", body), "DOMPurify removes a script whose text looks like markup"


def test_the_page_script_fills_its_placeholders():
    filled = SCRIPT % {"jump_label": '"Jump"', "edit_key": "edit", "stop_key": "stop_answer",
                       "search_key": "conversation_search", "new_chat_key": "new_chat", "more_key": "list_more"}
    assert "%(" not in filled and ".st-key-${key}" in filled
