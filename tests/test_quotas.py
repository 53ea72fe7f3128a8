"""Quotas on the host's keys (atri.quotas): counted in the database, atomically, before anything is sent."""
import asyncio
import threading
import time
from dataclasses import replace

import pytest

from atri.calls import arun_turn, run_turn
from atri.messages import ChatOptions, Message
from atri.providers import catalogue
from atri.quotas import Key, Meter, Payer, QuotaExceeded, Quotas
from atri.request import build_request
from atri.settings import QuotaLimits, Settings
from atri.store import Store
from atri.titles import suggest_title
from tests.fake_provider import GOOD_KEY

DASHSCOPE = catalogue()["dashscope"]
ALICE = Payer("alice", "203.0.113.7")
BOB = Payer("bob", "198.51.100.2")


def test_limits_come_from_the_settings_and_unset_means_unlimited():
    assert not QuotaLimits.of({}).any
    limits = QuotaLimits.of({"ATRI_QUOTA_REQUESTS_PER_MINUTE": "20", "ATRI_QUOTA_TOKENS_PER_DAY": "50_000",
                             "ATRI_BUDGET_TOKENS_PER_DAY": "nonsense"})
    assert (limits.requests_per_minute, limits.tokens_per_day, limits.budget_tokens_per_day) == (20, 50_000, None)
    assert Settings({"ATRI_QUOTA_TOKENS_PER_DAY": "100"}).config.quotas.tokens_per_day == 100


def test_requests_past_the_minute_limit_are_refused_until_the_next_minute(store):
    quotas = Quotas(store, QuotaLimits(requests_per_minute=2))
    quotas.admit(ALICE, 10)
    quotas.admit(ALICE, 10)
    with pytest.raises(QuotaExceeded) as refused:
        quotas.admit(ALICE, 10)
    assert refused.value.what == "requests" and refused.value.limit == 2
    assert 0 < refused.value.resets_at - time.time() <= 60
    quotas.admit(BOB, 10)  # another visitor has their own
    assert [(s.what, s.used, s.limit) for s in quotas.standing(ALICE)] == [("requests", 2, 2)]


def test_a_new_cookie_from_the_same_address_does_not_start_over(store):
    quotas = Quotas(store, QuotaLimits(requests_per_minute=1))
    quotas.admit(Payer("first-cookie", "203.0.113.7"), 0)
    with pytest.raises(QuotaExceeded):
        quotas.admit(Payer("cleared-cookies", "203.0.113.7"), 0)


def test_tokens_are_estimated_before_and_charged_with_the_real_usage_after(store):
    quotas = Quotas(store, QuotaLimits(tokens_per_day=1000))
    admission = quotas.admit(ALICE, 300)
    assert [(s.what, s.used) for s in quotas.standing(ALICE)] == [("tokens", 300)]
    admission.charge(700)  # the answer made it 700 in all
    assert [(s.what, s.used) for s in quotas.standing(ALICE)] == [("tokens", 700)]
    with pytest.raises(QuotaExceeded) as refused:
        quotas.admit(ALICE, 301)  # 700 + 301 > 1000
    assert refused.value.what == "tokens"
    assert [(s.what, s.used) for s in quotas.standing(ALICE)] == [("tokens", 700)], "a refusal takes nothing"
    quotas.admit(ALICE, 300)  # exactly up to the limit still goes


def test_the_hosts_budget_is_shared_by_everyone_and_own_keys_do_not_touch_it(store):
    quotas = Quotas(store, QuotaLimits(requests_per_minute=100, tokens_per_day=10_000, budget_tokens_per_day=1000))
    quotas.admit(ALICE, 600)
    with pytest.raises(QuotaExceeded) as refused:
        quotas.admit(BOB, 600)
    assert refused.value.what == "budget"
    quotas.admit(replace(BOB, key=Key.OWN), 600)  # the visitor's own key: no token quota, no budget
    quotas.admit(replace(BOB, key=Key.EMBEDDED), 600)  # the host's machine: the visitor's quota, not the budget
    standing = {s.what: s.used for s in quotas.standing(BOB)}
    assert standing == {"requests": 2, "tokens": 600, "budget": 600}  # the refused one took nothing


def test_own_keys_still_count_against_the_request_rate(store):
    quotas = Quotas(store, QuotaLimits(requests_per_minute=1, tokens_per_day=10))
    own = replace(ALICE, key=Key.OWN)
    quotas.admit(own, 5000)
    with pytest.raises(QuotaExceeded) as refused:
        quotas.admit(own, 0)
    assert refused.value.what == "requests"


def test_racing_tabs_and_replicas_cannot_overrun_a_quota_of_one(store):
    """Sixteen requests at once from two processes' worth of stores on one database: exactly one gets through."""
    other_replica = Store(str(store.engine.url.render_as_string(hide_password=False)))
    replicas = [Quotas(store, QuotaLimits(requests_per_minute=1)), Quotas(other_replica, QuotaLimits(requests_per_minute=1))]
    admitted, refused = [], []
    start = threading.Barrier(16)

    def ask(n: int) -> None:
        start.wait()
        try:
            replicas[n % 2].admit(ALICE, 1)
            admitted.append(n)
        except QuotaExceeded:
            refused.append(n)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other_replica.engine.dispose()
    assert len(admitted) == 1 and len(refused) == 15


def _metered(fake, store, limits, payer=ALICE):
    conn = Settings({"DASHSCOPE_API_KEY": GOOD_KEY, "DASHSCOPE_BASE_URL": fake.base_url}).connection(DASHSCOPE)
    return replace(conn, meter=Meter(Quotas(store, limits), payer))


def _plan(text="你好"):
    options = ChatOptions("dashscope", "qwen-plus")
    return build_request([Message("user", text)], options, DASHSCOPE.model("qwen-plus"), DASHSCOPE)


def test_a_refused_turn_sends_nothing_and_says_which_limit(fake, store):
    conn = _metered(fake, store, QuotaLimits(tokens_per_day=5))
    *_, turn = run_turn(conn, _plan("a question far longer than five tokens, surely"))
    assert turn.error is not None and turn.error.kind == "quota_tokens"
    assert turn.error.retry_after_s > 0
    assert fake.requests == [], "nothing reached the provider"


def test_answers_titles_and_async_turns_are_all_charged_their_real_usage(fake, store):
    quotas_limits = QuotaLimits(tokens_per_day=100_000)
    conn = _metered(fake, store, quotas_limits)
    *_, turn = run_turn(conn, _plan())
    answer_tokens = turn.usage.prompt_tokens + turn.usage.completion_tokens

    async def compare_style():
        return [t async for t in arun_turn(conn, _plan())][-1]

    async_turn = asyncio.run(compare_style())
    async_tokens = async_turn.usage.prompt_tokens + async_turn.usage.completion_tokens
    suggest_title(conn, DASHSCOPE.model("qwen-plus"), Message("user", "你好"), Message("assistant", "Echo: 你好"))
    used = {s.what: s.used for s in Quotas(store, quotas_limits).standing(ALICE)}["tokens"]
    assert len(fake.requests) == 3
    assert used > answer_tokens + async_tokens, "the title's tokens count too"
