"""Owner cookies are issued and signed by the server, and stored as a hash (issue 14, item 10)."""
import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import text

from atri.owners import anonymous_owner, identify, sign, user_owner, verified_token
from atri.store import Store
from tests.browser import NO_CHROMIUM, chromium_available, launch, streamlit_server
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
    assert token not in owner and len(owner.removeprefix("anon:")) == 64


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
