"""A budget that holds (issue 27, rows 6 and 7): every request reserves its largest possible output when it is
admitted, so no answer, tool round, title, Compare or Batch row can spend past a visitor's token quota or the
demo's budget; titles and summaries do not use a visitor's requests per minute; and credentials the host put
in a base URL never go with a visitor's own key. Real HTTP (the fake DashScope server, which honours max_tokens
and thinking_budget as DashScope does), real SQLite and PostgreSQL."""
import asyncio
import base64
import threading
from dataclasses import replace

from atri.answers import Answerer, TurnSetup
from atri.batch import DONE, BatchRun, run_sync
from atri.batch_plan import Variant, batch_spec
from atri.calls import Target, arun_turn, run_turn
from atri.client import list_models
from atri.compare import compare
from atri.context import ContextSettings
from atri.context.summaries import write_summary
from atri.i18n import t
from atri.messages import ChatOptions, Message
from atri.providers import catalogue
from atri.quotas import Key, Meter, Payer, Quotas
from atri.request import build_request
from atri.settings import QuotaLimits, Settings
from atri.titles import suggest_title
from atri.tokens import rough_count
from atri.tools import Tool, Toolbox
from tests.fake_provider import GOOD_KEY

DASHSCOPE = catalogue()["dashscope"]
QWEN_PLUS = DASHSCOPE.model("qwen-plus")
ALICE = Payer("alice", "203.0.113.7")
BOB = Payer("bob", "198.51.100.2")
CAROL = Payer("carol", "192.0.2.9")
QUOTA, BUDGET = 3_000, 6_000  # the numbers: a visitor's tokens per day, the whole demo's
SMALL_DEMO = QuotaLimits(tokens_per_day=QUOTA, budget_tokens_per_day=BUDGET)


def metered(fake, store, limits, payer=ALICE, key=Key.HOST):
    conn = Settings({"DASHSCOPE_API_KEY": GOOD_KEY, "DASHSCOPE_BASE_URL": fake.base_url}).connection(DASHSCOPE)
    return replace(conn, meter=Meter(Quotas(store, limits), replace(payer, key=key)))


def plan_for(text, **options):
    return build_request([Message("user", text)], ChatOptions("dashscope", "qwen-plus", **options), QWEN_PLUS, DASHSCOPE)


def used(store, limits, payer, what):
    return {s.what: s.used for s in Quotas(store, limits).standing(payer)}.get(what, 0)


def spent(turn):
    return turn.usage.prompt_tokens + turn.usage.completion_tokens if turn.usage else 0


# --- row 6: one long answer ----------------------------------------------------------------------------------


def test_a_20000_token_answer_stops_where_the_visitors_3000_tokens_end_and_says_why(fake, store):
    fake.answer_tokens = 20_000
    conn = metered(fake, store, SMALL_DEMO)
    *_, turn = run_turn(conn, plan_for("Tell me the longest story you know"))
    assert turn.error is None and turn.content.startswith("Echo:")
    assert spent(turn) <= QUOTA, f"spent {spent(turn)} of a {QUOTA}-token quota"
    assert fake.spent_tokens <= QUOTA, "what the provider billed stays inside the quota too"
    assert used(store, SMALL_DEMO, ALICE, "tokens") <= QUOTA
    assert turn.finish_reason == "length" and "note_quota_cut" in turn.notes
    assert "quota" in t("en", "note_quota_cut") and "额度" in t("zh", "note_quota_cut")

    asked = len(fake.requests)
    *_, refused = run_turn(conn, plan_for("And another one"))
    assert refused.error is not None and refused.error.kind == "quota_tokens"
    assert len(fake.requests) == asked, "a question that has no room left is not sent"


def test_an_answer_that_fits_is_not_cut_and_gets_no_note(fake, store):
    conn = metered(fake, store, SMALL_DEMO)
    *_, turn = run_turn(conn, plan_for("hello"))
    assert turn.finish_reason == "stop" and "note_quota_cut" not in turn.notes
    assert used(store, SMALL_DEMO, ALICE, "tokens") == spent(turn), "what was reserved and not used is given back"


def test_a_million_token_thinking_budget_cannot_think_past_the_quota(fake, store):
    """DashScope's max_tokens does not bound the reasoning; the reserve bounds both."""
    fake.reasoning_text = "hmm " * 30_000
    fake.answer_tokens = 20_000
    conn = metered(fake, store, SMALL_DEMO)
    *_, turn = run_turn(conn, plan_for("Think hard, then tell a long story", thinking=True, thinking_budget=1_000_000))
    assert turn.reasoning and turn.content and turn.error is None
    assert spent(turn) <= QUOTA and fake.spent_tokens <= QUOTA


def test_the_demo_budget_binds_a_visitor_with_a_large_quota(fake, store):
    fake.answer_tokens = 20_000
    limits = QuotaLimits(tokens_per_day=100_000, budget_tokens_per_day=BUDGET)
    *_, turn = run_turn(metered(fake, store, limits), plan_for("A long story, please"))
    assert turn.finish_reason == "length" and fake.spent_tokens <= BUDGET
    assert used(store, limits, ALICE, "budget") <= BUDGET


def test_tool_rounds_each_stay_inside_what_is_left(fake, store):
    """An answer that calls a tool, then writes 20,000 tokens: the answer worker's tool loop, on a real store."""
    fake.answer_tokens = 20_000
    conn = metered(fake, store, SMALL_DEMO)
    toolbox = Toolbox([Tool("lookup", "looks something up", {"type": "object", "properties": {}}, lambda args: "42")])
    cid = store.create_conversation("alice", "tools")
    store.append("alice", cid, Message("user", "[[lookup {}]] then tell me a long story"))
    answerer = Answerer(store)
    try:
        setup = TurnSetup(ChatOptions("dashscope", "qwen-plus"), conn, QWEN_PLUS, rough_count, ContextSettings(),
                          tools=toolbox)
        assert answerer.start("alice", cid, setup).done.wait(30)
    finally:
        answerer.close()
    answer = store.messages("alice", cid)[-1]
    assert answer.facts.tool_steps and answer.content.startswith("Tool results: lookup = 42")
    assert len(fake.streamed) == 2 and all(r.get("max_tokens") for r in fake.streamed)
    assert fake.spent_tokens <= QUOTA and used(store, SMALL_DEMO, ALICE, "tokens") <= QUOTA
    assert answer.facts.finish_reason == "length" and "note_quota_cut" in answer.facts.notes


# --- row 6: many requests racing --------------------------------------------------------------------------------


def test_batch_at_concurrency_32_and_compare_racing_never_pass_the_budget_or_a_quota(fake, store):
    fake.answer_tokens = 1_500
    fake.chunk_delay_s = 0.002
    batch_target = Target(metered(fake, store, SMALL_DEMO, ALICE), QWEN_PLUS)
    batch = BatchRun("alice", batch_spec("dashscope", "qwen-plus", [(f"row {i}", {}) for i in range(32)],
                                         Variant(), concurrency=32), batch_target)
    results = {}

    def comparing(payer):
        targets = [Target(metered(fake, store, SMALL_DEMO, payer), DASHSCOPE.model(m))
                   for m in ("qwen-plus", "qwen3-max", "qwen-flash", "qwen3-vl-plus")]
        results[payer.owner] = asyncio.run(compare(targets, Message("user", "compare us"), ChatOptions("dashscope", "")))

    threads = [threading.Thread(target=comparing, args=(payer,)) for payer in (BOB, CAROL)]
    for thread in threads:
        thread.start()
    view = run_sync(batch)
    for thread in threads:
        thread.join()

    assert fake.spent_tokens <= BUDGET, f"the provider billed {fake.spent_tokens} against a {BUDGET}-token budget"
    assert used(store, SMALL_DEMO, ALICE, "budget") <= BUDGET
    for payer in (ALICE, BOB, CAROL):
        assert used(store, SMALL_DEMO, payer, "tokens") <= QUOTA, payer.owner
    batch_spent = sum(row.prompt_tokens + row.completion_tokens for row in view.rows)
    assert batch_spent <= QUOTA, "alice's rows together stay inside alice's quota"
    answered = [row for row in view.rows if row.status == DONE] + \
        [turn for turns in results.values() for turn in turns if turn.error is None]
    assert answered, "the budget was spent on answers, not refused outright"
    refused = [row.error_kind for row in view.rows if row.error_kind] + \
        [turn.error.kind for turns in results.values() for turn in turns if turn.error]
    assert refused and set(refused) <= {"quota_tokens", "quota_budget"}, set(refused)


def test_batch_rows_refused_for_what_their_siblings_hold_wait_and_all_get_answered(fake, store):
    """Each running row holds up to the model's whole output (16,384 tokens for qwen-plus) until it ends: under a
    40,000-token quota only two or three of eight rows fit at once. The others wait for the reserve to come back
    instead of failing, and every row is answered within the quota."""
    limits = QuotaLimits(tokens_per_day=40_000)
    fake.chunk_delay_s = 0.01
    run = BatchRun("alice", batch_spec("dashscope", "qwen-plus", [(f"row {i}", {}) for i in range(8)], Variant(),
                                       concurrency=8), Target(metered(fake, store, limits), QWEN_PLUS))
    view = run_sync(run)
    assert [row.status for row in view.rows] == [DONE] * 8, [row.error_kind for row in view.rows]
    assert used(store, limits, ALICE, "tokens") == sum(row.prompt_tokens + row.completion_tokens for row in view.rows)


def test_async_turns_hold_the_reserve_too(fake, store):
    fake.answer_tokens = 20_000
    conn = metered(fake, store, SMALL_DEMO)

    async def three_at_once():
        async def one(text):
            return [turn async for turn in arun_turn(conn, plan_for(text))][-1]
        return await asyncio.gather(*(one(f"story {i}") for i in range(3)))

    turns = asyncio.run(three_at_once())
    assert sum(spent(turn) for turn in turns) <= QUOTA and fake.spent_tokens <= QUOTA


# --- row 6: the host's own calls ------------------------------------------------------------------------------


def test_a_title_and_a_summary_use_tokens_but_not_the_visitors_requests_per_minute(fake, store):
    limits = QuotaLimits(requests_per_minute=2, tokens_per_day=100_000)
    conn = metered(fake, store, limits)
    *_, first = run_turn(conn, plan_for("first question"))
    assert first.error is None
    tokens_before = used(store, limits, ALICE, "tokens")
    title = suggest_title(conn, QWEN_PLUS, Message("user", "first question"), Message("assistant", first.content))
    assert title, "the title was written"
    thread = [Message("user", "first question"), Message("assistant", first.content)] * 3
    assert write_summary(conn, QWEN_PLUS, thread, (0, 4), None)
    assert used(store, limits, ALICE, "requests") == 1, "the host's calls are not the visitor's requests"
    assert used(store, limits, ALICE, "tokens") > tokens_before, "but they are paid for"
    *_, second = run_turn(conn, plan_for("second question"))
    assert second.error is None, "the second question of a 2-per-minute quota goes through"


def test_a_title_is_refused_when_the_budget_is_spent(fake, store):
    limits = QuotaLimits(budget_tokens_per_day=5)
    conn = metered(fake, store, limits)
    assert suggest_title(conn, QWEN_PLUS, Message("user", "q"), Message("assistant", "a")) is None
    assert fake.requests == []


# --- row 7: credentials in a base URL ------------------------------------------------------------------------


def test_gateway_credentials_in_the_base_url_go_with_the_hosts_requests_only(fake):
    gateway = fake.base_url.replace("http://", "http://gw-user:gw%20pass@")
    basic = "Basic " + base64.b64encode(b"gw-user:gw pass").decode()
    fake.accepted_keys = {GOOD_KEY, "junk-typed-by-a-visitor", basic}
    settings = Settings({"DASHSCOPE_API_KEY": GOOD_KEY, "DASHSCOPE_BASE_URL": gateway})
    visitor = settings.connection(DASHSCOPE, visitor_key="junk-typed-by-a-visitor")
    host = settings.connection(DASHSCOPE)
    for conn in (visitor, host):
        assert "gw-user" not in conn.base_url and "gw pass" not in repr(conn) and "gw%20pass" not in repr(conn)

    *_, turn = run_turn(visitor, plan_for("hi"))
    assert fake.authorizations == ["Bearer junk-typed-by-a-visitor"], "the visitor's own key, alone"
    assert "gw" not in turn.request["base_url"]

    async def compare_style():
        return [t async for t in arun_turn(visitor, plan_for("hi again"))][-1]

    asyncio.run(compare_style())
    assert suggest_title(visitor, QWEN_PLUS, Message("user", "a title"), Message("assistant", "a"))
    assert fake.authorizations[1:] == ["Bearer junk-typed-by-a-visitor"] * 2

    fake.authorizations.clear()
    *_, host_turn = run_turn(host, plan_for("hi"))
    assert host_turn.error is None
    assert list_models(host)
    assert fake.authorizations == [basic, basic], "the host's gateway still gets its credentials"
