"""Context strategies over a scripted 60-turn conversation: input tokens sent, and planted-fact recall.

    python -m bench.context_strategies [--window 8192] [--no-summary-model]

For each strategy it prints the input tokens sent at turns 10, 30 and 60, the total over the 60 turns,
and recall: the share of the late questions whose planted fact was inside what was sent. Tokens are
counted with the Qwen2 vocabulary of the bundled model. The rolling summary is written by the embedded
model (through the same client as the app), unless --no-summary-model is given.
"""
from __future__ import annotations

import argparse
import time

from atri.context import ContextSettings, Memory, Summary, prepare_context
from atri.context.summaries import write_summary
from atri.local import BUNDLED_MODEL_ID, assemble_model, bundled_token_counter, cache_dir, start_engine
from atri.messages import Message
from atri.providers import LOCAL, ModelInfo, catalogue
from atri.settings import Connection
from bench.conversation import canned_answer, script

SYSTEM = "你是一只可爱的猫娘,名字叫Atri,会软软地对用户喵喵叫"


class InMemoryContext:
    """The app's ContextSource without a database: what the store keeps, kept in a list."""

    def __init__(self) -> None:
        self._summary: Summary | None = None
        self._memories: list[Memory] = []

    def summary(self) -> Summary | None:
        return self._summary

    def save_summary(self, summary: Summary) -> None:
        self._summary = summary

    def memories(self, embedder: str) -> list[Memory]:
        return list(self._memories)

    def add_memories(self, embedder: str, memories: list[Memory]) -> None:
        self._memories += memories

    def document_tokens(self) -> int:
        return 0  # this bench measures the history strategies: no documents

    def document_chunks(self, embedder: str) -> list:
        return []


def run(strategy: ContextSettings, budget: int, count, summarise) -> dict:
    """The 60 turns through the same preparation step as the app (atri.context.prepare_context)."""
    thread: list[Message] = []
    source = InMemoryContext()
    sent_tokens, hits, asked = [], 0, 0
    started = time.perf_counter()
    for turn, (user_text, fact) in enumerate(script(), start=1):
        thread.append(Message("user", user_text))
        plan = prepare_context(source, thread, strategy, SYSTEM, budget, count, summarise)
        sent_tokens.append(plan.input_tokens)
        if fact:
            asked += 1
            sent_text = plan.system_prompt + "\n".join(m.content for m in plan.sent)
            hits += fact.needle in sent_text
        thread.append(Message("assistant", canned_answer(user_text, turn)))
    return {"tokens": sent_tokens, "recall": hits / asked, "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--window", type=int, default=8192, help="context window of the pretend model")
    parser.add_argument("--no-summary-model", action="store_true", help="summaries are the turns' first lines")
    args = parser.parse_args()
    count = bundled_token_counter(cache_dir())
    model = ModelInfo(id="bench", context_window=args.window, max_output=1024)
    budget = model.context_window - model.max_output

    engine = None
    if args.no_summary_model:
        def summarise(thread, due, previous):
            lines = [m.content[:60] for m in thread[due[0]:due[1]] if m.role == "user"]
            return ((previous.text + "\n") if previous else "") + "\n".join(f"- {line}" for line in lines)
    else:
        engine = start_engine(assemble_model(cache_dir()), BUNDLED_MODEL_ID)
        local = catalogue()[LOCAL]
        conn = Connection(local, engine.base_url, "not-needed", timeout_s=300)

        def summarise(thread, due, previous):
            return write_summary(conn, local.models[0], thread, due, previous)

    strategies = {
        "full history": ContextSettings("full"),
        "last 6 turns": ContextSettings("last_n", last_n=6),
        "rolling summary": ContextSettings("summary", last_n=6),
        "recall memory": ContextSettings("recall", last_n=4, recall_k=3),
        "recall + summary": ContextSettings("recall", last_n=4, recall_k=3, recall_with_summary=True),
    }
    try:
        results = {name: run(s, budget, count, summarise) for name, s in strategies.items()}
    finally:
        if engine:
            engine.stop()
    full_total = sum(results["full history"]["tokens"])
    print(f"60-turn scripted conversation, window {args.window} (input budget {budget}), Qwen2 tokens, "
          f"summaries by {'first lines' if args.no_summary_model else 'the embedded model'}")
    print(f"{'strategy':<18}{'turn 10':>9}{'turn 30':>9}{'turn 60':>9}{'total':>10}{'vs full':>9}{'recall':>8}{'time s':>8}")
    for name, r in results.items():
        t = r["tokens"]
        print(f"{name:<18}{t[9]:>9,}{t[29]:>9,}{t[59]:>9,}{sum(t):>10,}{sum(t) / full_total - 1:>+9.0%}"
              f"{r['recall']:>8.0%}{r['seconds']:>8.1f}")


if __name__ == "__main__":
    main()
