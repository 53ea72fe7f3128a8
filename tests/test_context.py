"""Context strategies on plain data: what is sent, what is left out, when a summary is due."""
import numpy as np
import pytest

from atri.context import (
    ContextSettings,
    Memory,
    Recalled,
    Summary,
    last_turns_from,
    plan_context,
    recall,
    summary_due,
    summary_messages,
    turn_key,
    turn_text,
    turns_to_embed,
)
from atri.messages import Message, Usage
from atri.pricing import Price, Tier, format_cost, request_cost
from atri.tokens import rough_count


def words(n: int) -> str:
    return " ".join(["word"] * n)


def thread_of(turns: int, size: int = 40) -> list[Message]:
    thread = []
    for i in range(turns):
        thread += [Message("user", f"question {i} {words(size)}"), Message("assistant", f"answer {i} {words(size)}")]
    return thread + [Message("user", "the new question")]


def count(text: str) -> int:
    return len(text.split())


def sent_text(plan) -> str:
    return plan.system_prompt + "\n".join(m.content for m in plan.sent)


def test_full_history_sends_everything_while_it_fits():
    thread = thread_of(5)
    plan = plan_context(thread, ContextSettings("full"), "persona", 10_000, count)
    assert plan.sent == thread and plan.dropped == [] and plan.notes == []


def test_full_history_that_no_longer_fits_drops_the_oldest_turns_and_says_so():
    thread = thread_of(20)
    plan = plan_context(thread, ContextSettings("full"), "persona", 500, count)
    assert plan.input_tokens <= 500
    assert plan.sent[-1].content == "the new question" and plan.sent[0].role == "user"
    assert plan.dropped == list(range(len(thread) - len(plan.sent)))
    assert "context_full_fell_back" in plan.notes


def test_last_n_keeps_n_turns_and_the_question():
    thread = thread_of(10)
    plan = plan_context(thread, ContextSettings("last_n", last_n=3), "", 10_000, count)
    assert [m.content.split()[1] for m in plan.sent[:-1:2]] == ["7", "8", "9"]
    assert len(plan.dropped) == 14


def test_summary_replaces_the_turns_it_covers():
    thread = thread_of(6)
    summary = Summary("- the user likes cats", through=6)
    plan = plan_context(thread, ContextSettings("summary"), "persona", 10_000, count, summary)
    assert plan.sent == thread[6:]
    assert "the user likes cats" in plan.system_prompt and plan.system_prompt.startswith("persona")
    assert plan.dropped == list(range(6))


def test_a_summary_is_due_past_the_share_of_the_budget_and_folds_the_older_half():
    thread = thread_of(10)  # ~860 words
    settings = ContextSettings("summary", summary_share=0.7)
    assert summary_due(thread, settings, None, 2_000, count) is None
    start, end = summary_due(thread, settings, None, 1_000, count)
    assert start == 0 and thread[end].role == "user" and 6 <= end <= 12
    # once summarised up to `end`, it is not due again until the rest grows
    assert summary_due(thread, settings, Summary("s", end), 1_000, count) is None


def test_later_summaries_fold_in_the_earlier_one():
    thread = thread_of(4)
    messages = summary_messages(thread, 4, 6, Summary("- cat is 小橘", 4))
    assert "cat is 小橘" in messages[1]["content"] and "question 2" in messages[1]["content"]
    assert "question 0" not in messages[1]["content"]


def test_recall_sends_recent_turns_plus_the_recalled_ones():
    thread = thread_of(10)
    recalled = [Recalled(2, "User: my cat is 小橘", 0.91)]
    plan = plan_context(thread, ContextSettings("recall", last_n=2), "", 10_000, count, recalled=recalled)
    assert "my cat is 小橘" in plan.system_prompt
    assert len(plan.sent) == 5 and plan.recalled == recalled


def test_recall_finds_the_closest_earlier_turn():
    class Letters:  # a transparent embedder: one dimension per marker word
        name = "letters"
        vocab = ["cat", "flight", "weather"]

        def vector(self, text):
            v = np.array([text.count(w) for w in self.vocab], dtype=np.float32) + 1e-3
            return v / np.linalg.norm(v)

        def passages(self, texts):
            return np.stack([self.vector(t) for t in texts])

        def query(self, text):
            return self.vector(text)

    thread = [Message("user", "my cat"), Message("assistant", "cute cat"), Message("user", "my flight"),
              Message("assistant", "ok"), Message("user", "weather?"), Message("assistant", "sunny"),
              Message("user", "when is the flight?")]
    embedder = Letters()
    memories = [Memory(key, text, embedder.passages([text])[0]) for key, text in turns_to_embed(thread, set())]
    assert [m.text.split("\n")[0] for m in memories] == ["User: my cat", "User: my flight", "User: weather?"]
    found = recall("when is the flight?", thread, memories, embedder, k=1, before=len(thread) - 1)
    assert [r.index for r in found] == [2] and found[0].score > 0.9


def test_turn_keys_change_when_the_answer_is_regenerated():
    thread = [Message("user", "q", id=1), Message("assistant", "a", id=2), Message("user", "next", id=3)]
    before = turn_key(thread, 0)
    thread[1] = Message("assistant", "another answer", id=9)
    assert turn_key(thread, 0) != before
    assert turn_text(thread, 0) == "User: q\nAssistant: another answer"


def test_last_turns_from_counts_whole_turns():
    thread = thread_of(5)
    assert last_turns_from(thread, 2) == 6 and last_turns_from(thread, 99) == 0


def test_cost_uses_the_tier_of_the_request_and_discounts_cached_input():
    price = Price("CNY", (Tier(32_768, 6.0, 24.0), Tier(131_072, 10.0, 40.0)), cached_share=0.2)
    small = request_cost(price, Usage(prompt_tokens=1_000, completion_tokens=100))
    assert small == pytest.approx((1_000 * 6 + 100 * 24) / 1e6)
    large = request_cost(price, Usage(prompt_tokens=50_000, completion_tokens=100, cached_tokens=40_000))
    assert large == pytest.approx((10_000 * 10 + 40_000 * 10 * 0.2 + 100 * 40) / 1e6)
    assert format_cost(small, "CNY") == "¥0.0084"


def test_rough_count_treats_each_cjk_character_as_a_token():
    assert rough_count("你好世界") == 4 and 2 <= rough_count("hello world") <= 4
