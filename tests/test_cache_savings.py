"""DashScope's context cache in the accounts (issue 31): its usage figures read from a chunk shaped as Model
Studio documents them, the cost of a cache write (125 %) and of explicit (10 %) and implicit (20 %) hits,
and what the cache saved stored with each answer and added up, on SQLite and PostgreSQL."""
import pytest

from atri.messages import AnswerFacts, Message, usage_from_provider
from atri.pricing import Price, Tier, cache_saving, request_cost

PRICE = Price("CNY", (Tier(up_to=10**9, input=1.0, output=2.0),), cached_share=0.2, explicit_cached_share=0.1,
              cache_write_share=1.25)  # per million tokens


def test_the_usage_of_an_explicit_cache_write_and_hit_is_read():
    written = usage_from_provider({"prompt_tokens": 3019, "completion_tokens": 104, "prompt_tokens_details": {
        "cached_tokens": 0, "cache_creation_input_tokens": 2048, "cache_type": "ephemeral"}})
    hit = usage_from_provider({"prompt_tokens": 3019, "completion_tokens": 104, "prompt_tokens_details": {
        "cached_tokens": 2048, "cache_creation_input_tokens": 0, "cache_type": "ephemeral"}})
    implicit = usage_from_provider({"prompt_tokens": 3019, "completion_tokens": 104,
                                    "prompt_tokens_details": {"cached_tokens": 2048}})
    assert (written.cache_written_tokens, written.cache_explicit) == (2048, True)
    assert (hit.cached_tokens, hit.cache_explicit) == (2048, True)
    assert (implicit.cached_tokens, implicit.cache_explicit) == (2048, False)


def test_writes_cost_more_and_hits_less_explicit_hits_least():
    def usage(**details):
        return usage_from_provider({"prompt_tokens": 1_000_000, "completion_tokens": 0, "prompt_tokens_details": details})

    assert request_cost(PRICE, usage()) == pytest.approx(1.0)
    assert request_cost(PRICE, usage(cache_creation_input_tokens=1_000_000, cache_type="ephemeral")) == pytest.approx(1.25)
    assert request_cost(PRICE, usage(cached_tokens=1_000_000, cache_type="ephemeral")) == pytest.approx(0.1)
    assert request_cost(PRICE, usage(cached_tokens=1_000_000)) == pytest.approx(0.2)
    assert cache_saving(PRICE, usage(cached_tokens=1_000_000, cache_type="ephemeral")) == pytest.approx(0.9)
    assert cache_saving(PRICE, usage(cache_creation_input_tokens=1_000_000, cache_type="ephemeral")) == pytest.approx(-0.25)


def test_what_the_cache_saved_is_stored_with_the_answer_and_added_up(store):
    cid = store.create_conversation("alice")
    for details in ({"cache_creation_input_tokens": 1_000_000, "cache_type": "ephemeral"},
                    {"cached_tokens": 1_000_000, "cache_type": "ephemeral"},
                    {"cached_tokens": 1_000_000, "cache_type": "ephemeral"}):
        store.append("alice", cid, Message("user", "about the long document"))
        usage = usage_from_provider({"prompt_tokens": 1_000_000, "completion_tokens": 0, "prompt_tokens_details": details})
        store.append("alice", cid, Message("assistant", "ok", facts=AnswerFacts(model="qwen-plus", finish_reason="stop",
                                                                               usage=usage)), price=PRICE)
    answers = [m.facts for m in store.messages("alice", cid) if m.role == "assistant"]
    assert [f.saved for f in answers] == [pytest.approx(-0.25), pytest.approx(0.9), pytest.approx(0.9)]
    assert answers[1].usage.cache_explicit and answers[0].usage.cache_written_tokens == 1_000_000
    totals = store.usage_totals("alice")
    assert totals.cost == {"CNY": pytest.approx(1.25 + 0.1 + 0.1)} and totals.saved == {"CNY": pytest.approx(1.55)}
    (by_model,) = store.usage_report("alice")["by_model"]
    assert by_model["saved"] == pytest.approx(1.55)
