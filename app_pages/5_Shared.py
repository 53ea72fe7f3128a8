"""A shared chat, read-only. Layout only."""
from atri.ui.access import has_access
from atri.ui.config import current_language, load_settings
from atri.ui.share_page import share_page

share_page(current_language(), can_continue=has_access(), sharing_on=load_settings().config.share_links != "off")
