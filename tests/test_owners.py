"""Owner cookies are issued and signed by the server, and stored as a hash (issue 14, item 10)."""
import re

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import text

from atri.owners import anonymous_owner, identify, sign, user_owner, verified_token
from atri.store import Store
from tests.browser import IDLE, NO_CHROMIUM, chromium_available, launch, streamlit_server
from tests.conftest import ROOT
from tests.test_browser_persistence import ANSWER_END, env_for, open_page, send

SECRET = b"s" * 32


def nobody_has_conversations(owner: str) -> bool:
    return False


def test_a_signed_cookie_comes_back_as_the_same_owner():
    first = identify("", None, SECRET, nobody_has_conversations)
    assert first.cookie and first.owner.startswith("anon:")
    again = identify(first.cookie, None, SECRET, nobody_has_conversations)
    assert again.owner == first.owner and again.cookie is None


@pytest.mark.parametrize("forged", ["a-value-the-client-chose-itself-1234", "a-value-the-client-chose.AAAAAAAAAAAAAAAAAAAAAAAA",
                                    sign("token-signed-elsewhere-123456", b"other-secret" * 3), ".", "x" * 5000])
def test_a_cookie_the_server_did_not_sign_is_not_an_identity(forged):
    identity = identify(forged, None, SECRET, nobody_has_conversations)
    assert identity.owner not in (anonymous_owner(forged), anonymous_owner(forged.rpartition(".")[0]))
    assert identity.cookie and verified_token(identity.cookie, SECRET)


def test_a_cookie_from_before_signing_keeps_its_conversations_and_is_signed_now():
    legacy = "an-old-token-issued-by-the-last-version"
    identity = identify(legacy, None, SECRET, lambda owner: owner == anonymous_owner(legacy))
    assert identity.owner == anonymous_owner(legacy) and verified_token(identity.cookie, SECRET) == legacy


def test_a_token_issued_since_signing_is_not_an_identity_without_its_signature():
    issued_now = identify("", None, SECRET, nobody_has_conversations)
    token = verified_token(issued_now.cookie, SECRET)
    stripped = identify(token, None, SECRET, lambda owner: owner == issued_now.owner)  # it has conversations
    assert stripped.owner != issued_now.owner


def test_logged_in_users_are_owners_by_name_and_never_a_shared_none():
    assert user_owner("sub-1", None) == "user:sub-1" and user_owner(None, "a@b.c") == "user:a@b.c"
    assert user_owner(None, None) is None
    assert identify("", user_owner(None, None), SECRET, nobody_has_conversations).owner.startswith("anon:")


def test_the_database_holds_a_hash_of_the_token_never_the_token(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    identity = identify("", None, store.app_secret("owner-cookie"), nobody_has_conversations)
    store.create_conversation(identity.owner, "mine")
    token = verified_token(identity.cookie, store.app_secret("owner-cookie"))
    with store.engine.connect() as connection:
        [owner] = connection.execute(text("SELECT owner FROM conversations")).scalars().all()
    assert token not in owner and re.fullmatch(r"anon:[0-9a-f]{64}", owner)


@pytest.fixture
def hosted(dashscope_env, monkeypatch):
    """The app with its own database and no host key, and nothing cached from earlier tests."""
    import streamlit as st

    monkeypatch.delenv("ATRI_SECRET_KEY", raising=False)
    st.cache_resource.clear()
    st.cache_data.clear()


def a_visit(user: dict | None = None):
    """A new session of the app (AppTest can't send cookies: it is a visitor without one)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    if user is not None:
        at.user = user
    at.run()
    assert not at.exception, at.exception
    return at


def issued(at) -> tuple[str, str]:
    """The owner of a visit and the cookie value it sends the browser."""
    cookie = at.session_state["owner_cookie_to_set"]
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+=*", cookie), "no quote or semicolon can reach the script"
    return at.session_state["owner"], cookie


def test_the_hosts_secret_key_signs_the_cookies(hosted, monkeypatch):
    monkeypatch.setenv("ATRI_SECRET_KEY", "the-host's-own-key")
    owner, cookie = issued(a_visit())
    assert owner == anonymous_owner(verified_token(cookie, b"the-host's-own-key"))


def test_without_a_host_key_every_replica_on_the_database_accepts_the_cookie(hosted, database_url):
    owner, cookie = issued(a_visit())
    another_replica = Store(database_url)
    assert owner == anonymous_owner(verified_token(cookie, another_replica.app_secret("owner-cookie")))


def test_logged_in_users_without_subject_or_email_do_not_share_an_owner(hosted):
    first, second = a_visit({"is_logged_in": True}), a_visit({"is_logged_in": True})
    assert issued(first)[0] != issued(second)[0]
    named = a_visit({"is_logged_in": True, "sub": "sub-1"})
    assert named.session_state["owner"] == "user:sub-1" and named.session_state["owner_cookie_to_set"] is None


@pytest.mark.skipif(not chromium_available(), reason=NO_CHROMIUM)
def test_in_a_browser_a_forged_cookie_sees_nothing_and_a_reload_keeps_the_chats(fake, database_url):
    with streamlit_server(env_for(fake, database_url)) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, app.url)
        send(page, "my private chat")
        expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text(ANSWER_END, timeout=20_000)
        page.wait_for_url("**?c=*")
        cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "atri_owner")
        page.goto(app.url)
        expect(page.get_by_role("button", name="Echo: User: my private chat").or_(
            page.get_by_role("button", name="my private chat"))).to_be_visible(timeout=20_000)

        intruder = browser.new_context(locale="en-US")
        intruder.add_cookies([{"name": "atri_owner", "value": cookie.rpartition(".")[0] + ".forged-signature",
                               "url": app.url}])
        stranger = intruder.new_page()
        stranger.goto(app.url)
        stranger.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=60_000)
        expect(stranger.get_by_text("my private chat")).to_have_count(0)
        assert Store(database_url).engine.connect().execute(text("SELECT count(*) FROM conversations")).scalar() == 1
        browser.close()


@pytest.mark.skipif(not chromium_available(), reason=NO_CHROMIUM)
def test_in_a_browser_a_cookie_from_before_signing_keeps_its_chats_and_comes_back_signed(fake, database_url):
    legacy = "AnOldTokenIssuedBeforeSigning_123"
    store = Store(database_url)
    store.create_conversation(anonymous_owner(legacy), "my chat from last year")
    with streamlit_server(env_for(fake, database_url)) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        context = browser.new_context(locale="en-US")
        context.add_cookies([{"name": "atri_owner", "value": legacy, "url": app.url}])
        page = context.new_page()
        page.goto(app.url)
        page.wait_for_selector(IDLE, timeout=60_000)
        expect(page.get_by_role("button", name="my chat from last year")).to_be_visible(timeout=20_000)
        page.wait_for_function(f"document.cookie.includes('atri_owner={legacy}.')", timeout=20_000)
        cookie = next(c["value"] for c in context.cookies() if c["name"] == "atri_owner")
        assert verified_token(cookie, store.app_secret("owner-cookie")) == legacy
        browser.close()
