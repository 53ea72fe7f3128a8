"""deploy/nginx-atri.conf as shipped, in front of two `streamlit run` replicas on one PostgreSQL, driven in
Chromium."""
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from atri.local import free_port
from tests.browser import IDLE, NO_CHROMIUM, chromium_available, launch, streamlit_server
from tests.conftest import ROOT
from tests.fake_provider import GOOD_KEY

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = [pytest.mark.skipif(not chromium_available(), reason=NO_CHROMIUM),
              pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed (.ci/run installs it)")]

ANSWER_END = "several small pieces."
# Counts the distinct texts the newest answer showed while it streamed.
COUNT_CHANGES_JS = """() => {
  window.__changes = 0; let last = '';
  new MutationObserver(() => {
    const answers = document.querySelectorAll('[data-testid=stChatMessage]');
    if (answers.length < 2) return;
    const text = answers[answers.length - 1].innerText;
    if (text !== last) { last = text; window.__changes += 1; }
  }).observe(document.body, {childList: true, subtree: true, characterData: true});
}"""


def nginx_config(tmp: Path, listen: int, replicas: list[int]) -> Path:
    """The shipped site, with this test's ports, inside a minimal nginx.conf that keeps everything in tmp."""
    site = (ROOT / "deploy" / "nginx-atri.conf").read_text()
    site = site.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    site = site.replace("server 127.0.0.1:8501;", f"server 127.0.0.1:{replicas[0]};")
    site = site.replace("server 127.0.0.1:8502;", f"server 127.0.0.1:{replicas[1]};")
    assert f":{replicas[1]};" in site, "the shipped config names its two replicas"
    (tmp / "site.conf").write_text(site)
    temp = {name: tmp / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir()
        path.chmod(0o777)
    main = f"""
{'user root;' if os.geteuid() == 0 else ''}
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 256; }}
http {{
    log_format upstream '$request_uri $upstream_addr';
    access_log {tmp}/access.log upstream;
    client_body_temp_path {temp['body']};
    proxy_temp_path {temp['proxy']};
    fastcgi_temp_path {temp['fastcgi']};
    uwsgi_temp_path {temp['uwsgi']};
    scgi_temp_path {temp['scgi']};
    include {tmp}/site.conf;
}}
"""
    (tmp / "nginx.conf").write_text(main)
    return tmp / "nginx.conf"


def replicas_serving_websockets(access_log: Path) -> set[str]:
    """Logged when each websocket closes."""
    return set(re.findall(r"^/_stcore/stream (\S+)$", access_log.read_text(), flags=re.MULTILINE))


def replica_serving(url: str, access_log: Path) -> str:
    """The replica nginx sends this machine's requests to (asked with a plain request)."""
    urllib.request.urlopen(f"{url}/_stcore/health", timeout=5).read()
    return access_log.read_text().strip().splitlines()[-1].split()[-1]


def open_page(browser, url: str):
    page = browser.new_context(locale="en-US").new_page()
    page.goto(url)
    page.wait_for_selector(IDLE, timeout=60_000)
    return page


def test_two_replicas_behind_the_shipped_nginx_config(fake, pg_url, tmp_path):
    """Streaming arrives in pieces through nginx; when the replica serving a visitor goes away, their
    reload lands on the other one, which finds the conversation and counts the same quota."""
    fake.chunk_delay_s = 0.1  # long enough for a loaded machine to draw several states
    env = {"DASHSCOPE_API_KEY": GOOD_KEY, "DASHSCOPE_BASE_URL": fake.base_url, "ATRI_DATABASE_URL": pg_url,
           "ATRI_TRUSTED_PROXIES": "127.0.0.1", "ATRI_QUOTA_TOKENS_PER_DAY": "600", "ATRI_SECRET_KEY": "same-on-both"}
    ports, listen = [free_port(), free_port()], free_port()
    config = nginx_config(tmp_path, listen, ports)
    access_log = tmp_path / "access.log"
    with ExitStack() as running:
        replicas = {f"127.0.0.1:{port}": running.enter_context(streamlit_server(env, port=port)) for port in ports}
        proxy = subprocess.Popen([NGINX, "-c", str(config), "-p", str(tmp_path)], stderr=subprocess.PIPE)
        running.callback(proxy.wait, timeout=10)
        running.callback(proxy.terminate)
        time.sleep(0.5)
        assert proxy.poll() is None, proxy.stderr.read().decode()
        url = f"http://127.0.0.1:{listen}"
        with sync_playwright() as playwright:
            browser = launch(playwright)
            page = open_page(browser, url)
            page.evaluate(COUNT_CHANGES_JS)
            page.get_by_test_id("stChatInputTextArea").fill("Hello through nginx")
            page.keyboard.press("Enter")
            expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text(ANSWER_END, timeout=30_000)
            assert page.evaluate("window.__changes") >= 3, "the answer arrived in pieces, not all at once"
            page.wait_for_url("**?c=*")
            spent = re.compile(r"([1-9][\d,]*) of 600 tokens today")
            expect(page.get_by_test_id("stSidebar")).to_contain_text(spent, timeout=10_000)
            used = int(spent.search(page.get_by_test_id("stSidebar").inner_text()).group(1).replace(",", ""))

            first = replica_serving(url, access_log)
            gone = replicas.pop(first).process
            gone.terminate()
            gone.wait(timeout=10)
            page.reload()
            page.wait_for_selector(IDLE, timeout=60_000)
            expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text(ANSWER_END)
            expect(page.get_by_test_id("stSidebar")).to_contain_text(spent)
            assert int(spent.search(page.get_by_test_id("stSidebar").inner_text()).group(1).replace(",", "")) >= used, \
                "the other replica counts what this visitor spent on the first"

            sent = len(fake.streamed)
            page.get_by_test_id("stChatInputTextArea").fill("more words than the day has left " * 80)
            page.keyboard.press("Enter")
            expect(page.get_by_text("tokens for today on this demo are used up")).to_be_visible(timeout=20_000)
            assert len(fake.streamed) == sent, "the other replica refused it too: the quota is shared"
            browser.close()
    assert set(replicas_serving_websockets(access_log)) == {first, *replicas}, "each replica served the page once"


@contextmanager
def behind_nginx(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """Two replicas and the shipped nginx in front of them; yields nginx's URL."""
    ports, listen = [free_port(), free_port()], free_port()
    config = nginx_config(tmp_path, listen, ports)
    with ExitStack() as running:
        for port in ports:
            running.enter_context(streamlit_server(env, port=port))
        proxy = subprocess.Popen([NGINX, "-c", str(config), "-p", str(tmp_path)], stderr=subprocess.PIPE)
        running.callback(proxy.wait, timeout=10)
        running.callback(proxy.terminate)
        time.sleep(0.5)
        assert proxy.poll() is None, proxy.stderr.read().decode()
        yield f"http://127.0.0.1:{listen}"


def test_cookie_less_browsers_from_one_address_share_one_quota_behind_nginx(fake, pg_url, tmp_path):
    """Clearing cookies makes a new visitor, not a new address: behind nginx (a loopback peer, for which
    Streamlit knows no address), the address comes from X-Forwarded-For and its quota is shared."""
    limit = 3
    env = {"DASHSCOPE_API_KEY": GOOD_KEY, "DASHSCOPE_BASE_URL": fake.base_url, "ATRI_DATABASE_URL": pg_url,
           "ATRI_TRUSTED_PROXIES": "127.0.0.1", "ATRI_QUOTA_REQUESTS_PER_MINUTE": str(limit),
           "ATRI_SECRET_KEY": "same-on-both"}
    with behind_nginx(env, tmp_path) as url, sync_playwright() as playwright:
        browser = launch(playwright)
        if (left := 60 - time.time() % 60) < 40:  # all in one minute: the count starts over with the next
            time.sleep(left + 0.5)
        refused_at, owners = None, []
        for n in range(1, limit + 2):
            page = open_page(browser, url)  # a fresh context: no cookies, so a new owner
            page.get_by_test_id("stChatInputTextArea").fill(f"Question {n} from a browser without cookies")
            page.keyboard.press("Enter")
            used_up = page.get_by_text("requests a minute and they are used up")
            answered = page.get_by_test_id("stChatMessage").nth(1).get_by_text(ANSWER_END)
            expect(used_up.or_(answered)).to_be_visible(timeout=30_000)
            if used_up.is_visible():
                refused_at = n
                break
            page.wait_for_function("document.cookie.includes('atri_owner=')", timeout=10_000)
            owners.append(next(c["value"] for c in page.context.cookies() if c["name"] == "atri_owner"))
        browser.close()
    assert refused_at is not None, f"{limit + 1} cookie-less browsers from one address all got answers"
    assert 2 <= refused_at <= limit + 1, "the first browser was answered; the address's quota stopped a later one"
    assert len(set(owners)) == len(owners), "each browser was a new visitor"
    assert len(fake.streamed) <= limit, "the address never got more than its requests this minute"
