"""The front door of a shared demo: who a visitor is behind a proxy (atri.addresses), how fast the access
password may be guessed (atri.gate), and what the shipped configs and cookies promise."""
import re
import statistics
import time

import pytest
import tomllib
from playwright.sync_api import expect, sync_playwright

from atri.addresses import client_address, quota_address, served_over_https
from atri.gate import GUESSES_PER_MINUTE_OVERALL, GUESSES_PER_MINUTE_PER_ADDRESS, Outcome, PasswordGate
from atri.quotas import Payer, QuotaExceeded, Quotas
from atri.settings import QuotaLimits
from atri.store import Store
from atri.ui.identity import cookie_script
from tests.browser import IDLE, NO_CHROMIUM, chromium_available, launch, streamlit_server
from tests.conftest import ROOT
from tests.fake_provider import GOOD_KEY

PASSWORD = "let-me-in-7"


# The client's address behind a proxy. Streamlit's st.context.ip_address is None for a loopback peer
# (127.0.0.1 or ::1), which is exactly where the shipped nginx connects from.

@pytest.mark.parametrize(("peer", "forwarded", "trusted", "expected"), [
    (None, ["198.51.100.2"], "127.0.0.1", "198.51.100.2"),  # the shipped nginx: Streamlit says None
    (None, ["198.51.100.2"], "", "198.51.100.2"),  # loopback is always a proxy of this host
    ("::1", ["198.51.100.2"], "", "198.51.100.2"),
    (None, ["1.2.3.4, 198.51.100.2"], "127.0.0.1", "198.51.100.2"),  # the client made up the first hop
    (None, ["1.2.3.4", "198.51.100.2"], "127.0.0.1", "198.51.100.2"),  # two header lines: the last counts
    (None, ["198.51.100.2, 10.0.0.9"], "10.0.0.0/8", "198.51.100.2"),  # two proxies of ours
    (None, ["127.0.0.1"], "127.0.0.1", "127.0.0.1"),  # a browser on the proxy's own machine
    (None, [], "127.0.0.1", None),  # straight to Streamlit on this machine: no address to count
    ("203.0.113.7", [], "", "203.0.113.7"),
    ("203.0.113.7", ["1.2.3.4"], "", "203.0.113.7"),  # a header from anyone else is ignored
    ("203.0.113.7", ["1.2.3.4"], "not-a-network, 203.0.113.0/24", "1.2.3.4"),
    ("127.0.0.1", ["not-an-address"], "127.0.0.1", "127.0.0.1"),
    (None, ["::ffff:198.51.100.2"], "", "198.51.100.2"),  # IPv4 in IPv6 clothing is the IPv4 address
    (None, ["2001:DB8::1"], "", "2001:db8::1"),
])
def test_the_client_address_is_the_right_most_hop_no_trusted_proxy_wrote(peer, forwarded, trusted, expected):
    assert client_address(peer, forwarded, trusted) == expected


def test_an_ipv6_visitor_counts_as_their_whole_64_network():
    assert quota_address("2001:db8:1:2:aaaa::1") == quota_address("2001:db8:1:2:ffff:1:2:3") == "2001:db8:1:2::/64"
    assert quota_address("2001:db8:1:3::1") != quota_address("2001:db8:1:2::1")
    assert quota_address("198.51.100.2") == "198.51.100.2"
    assert quota_address(None) is None


def test_new_cookies_and_new_addresses_in_one_ipv6_network_share_one_quota(tmp_path):
    """A visitor with a /64 has 2^64 addresses and clears cookies between questions: still one quota."""
    quotas = Quotas(Store(f"sqlite:///{tmp_path / 'atri.db'}"), QuotaLimits(requests_per_minute=2))
    for n in range(2):
        quotas.admit(Payer(f"cookie-{n}", quota_address(client_address(None, [f"2001:db8:1:2::{n + 1}"], ""))), 0)
    with pytest.raises(QuotaExceeded):
        quotas.admit(Payer("cookie-3", quota_address(client_address(None, ["2001:db8:1:2:beef::9"], ""))), 0)


def test_the_page_is_https_when_the_browser_says_so_or_a_trusted_proxy_does():
    assert served_over_https("https://demo.example/", None, [], "")
    assert not served_over_https("http://127.0.0.1:8501/", None, [], "")
    assert served_over_https(None, None, ["https"], "127.0.0.1")  # nginx with TLS, X-Forwarded-Proto
    assert not served_over_https(None, "203.0.113.7", ["https"], "")  # anyone else's header means nothing
    assert not served_over_https(None, None, [], "")


def test_cookies_are_secure_on_https_and_not_sent_with_cross_site_requests():
    secure = cookie_script("atri_owner", "abc.def", 3600, secure=True)
    assert "; Secure" in secure and "SameSite=Lax" in secure and "max-age=3600" in secure
    assert "Secure" not in cookie_script("atri_owner", "abc.def", 3600, secure=False), \
        "a Secure cookie set on plain http would be dropped by the browser"


# Password guesses: counted per address and overall in the database, refused without a check past that.

def _gate(tmp_path) -> PasswordGate:
    return PasswordGate(Store(f"sqlite:///{tmp_path / 'atri.db'}"))


def test_past_the_limit_an_address_is_refused_even_the_right_password_and_told_when_to_retry(tmp_path):
    gate = _gate(tmp_path)
    at = 1_000_000 * 60 + 15.0  # 15 s into a minute
    for n in range(GUESSES_PER_MINUTE_PER_ADDRESS):
        wrong = gate.guess(f"guess-{n}", PASSWORD, "203.0.113.7", at=at)
        assert wrong.outcome is Outcome.WRONG and wrong.left == GUESSES_PER_MINUTE_PER_ADDRESS - n - 1
    refused = gate.guess(PASSWORD, PASSWORD, "203.0.113.7", at=at + 1)
    assert refused.outcome is Outcome.WAIT and refused.by == "address"
    assert refused.retry_at == at - 15 + 60, "the next minute"
    assert gate.guess(PASSWORD, PASSWORD, "198.51.100.2", at=at).outcome is Outcome.RIGHT, "others still get in"
    assert gate.guess(PASSWORD, PASSWORD, "203.0.113.7", at=at + 46).outcome is Outcome.RIGHT, "and so do they, later"


def test_many_addresses_together_are_held_to_the_overall_limit(tmp_path):
    gate = _gate(tmp_path)
    at = 1_000_000 * 60.0
    for n in range(GUESSES_PER_MINUTE_OVERALL):
        address = f"203.0.{n // GUESSES_PER_MINUTE_PER_ADDRESS}.{n}"
        assert gate.guess("guess", PASSWORD, address, at=at).outcome is Outcome.WRONG
    refused = gate.guess(PASSWORD, PASSWORD, "198.51.100.2", at=at)
    assert refused.outcome is Outcome.WAIT and refused.by == "everyone"


@pytest.mark.skipif(not chromium_available(), reason=NO_CHROMIUM)
def test_wrong_guesses_in_a_row_lock_the_gate_for_the_minute_and_each_is_answered_at_once(fake, database_url):
    env = {"DASHSCOPE_API_KEY": GOOD_KEY, "DASHSCOPE_BASE_URL": fake.base_url, "ATRI_DATABASE_URL": database_url,
           "ATRI_ACCESS_PASSWORD": PASSWORD}
    with streamlit_server(env) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context(locale="en-US").new_page()
        page.goto(app.url)
        page.wait_for_selector(IDLE, timeout=60_000)
        if (left := 60 - time.time() % 60) < 25:  # all in one minute: the count starts over with the next
            time.sleep(left + 0.5)
        took = []
        for n in range(GUESSES_PER_MINUTE_PER_ADDRESS):
            page.get_by_label("Access password").fill(f"guess-{n}")
            left = GUESSES_PER_MINUTE_PER_ADDRESS - n - 1
            started = time.monotonic()
            page.get_by_role("button", name="Enter").click()
            told = f"{left} more tries this minute." if left else "that was the last try this minute"
            expect(page.get_by_text(told)).to_be_visible(timeout=30_000)
            took.append(time.monotonic() - started)
            expect(page.get_by_text("That is not the password")).to_be_visible()
        page.get_by_label("Access password").fill(PASSWORD)
        page.get_by_role("button", name="Enter").click()
        expect(page.get_by_text(re.compile(r"Too many password attempts.*Try again in \d+ s"))).to_be_visible(
            timeout=10_000)
        expect(page.get_by_test_id("stChatInput")).to_have_count(0)
        browser.close()
    assert statistics.median(took) < 1.2, f"wrong guesses took {took} s: a refusal waits in no script thread"


# The shipped configs agree with each other.

def _megabytes(size: str) -> float:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", size).groups()
    return int(number) * {"": 1 / 2**20, "k": 1 / 1024, "m": 1, "g": 1024}[unit.lower()]


@pytest.mark.parametrize("site", ["nginx-atri.conf", "nginx-compose.conf"])
def test_nginx_lets_through_every_upload_streamlit_accepts(site):
    upload_mb = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]
    sizes = re.findall(r"^\s*client_max_body_size\s+(\S+);", (ROOT / "deploy" / site).read_text(), re.MULTILINE)
    assert len(sizes) == 1, "one limit for the whole site"
    body_mb = _megabytes(sizes[0])
    # Streamlit accepts a request body of maxUploadSize plus 1 MB for the multipart framing.
    assert upload_mb + 1 <= body_mb <= upload_mb + 2, \
        f"nginx takes {body_mb:g} MB bodies, Streamlit {upload_mb} MB uploads: one of them refuses what the other allows"
