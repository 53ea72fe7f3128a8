"""Choosing the context of one turn in a stored conversation: summary upkeep, recall, then the plan."""
from __future__ import annotations

from collections.abc import Callable

from .context import ContextPlan, ContextSettings, Summary, last_turns_from, plan_context, summary_due
from .errors import ChatError
from .memory import new_memories, write_summary
from .messages import Message
from .providers import ModelInfo
from .recall import Memory, default_embedder, recall
from .settings import Connection
from .store import Store
from .tokens import TokenCounter


def prepare_context(store: Store, owner: str, cid: str, thread: list[Message], settings: ContextSettings,
                    system_prompt: str, budget: int, count: TokenCounter, conn: Connection, model: ModelInfo,
                    on_summarising: Callable[[], None] = lambda: None) -> ContextPlan:
    """Bring the stored summary and memories up to date as the strategy needs, then plan what to send."""
    info = store.conversation(owner, cid)
    summary = info.summary if info else None
    notes: list[str] = []
    due = summary_due(thread, settings, summary, budget, count)
    while due:
        on_summarising()
        try:
            summary = Summary(write_summary(conn, model, thread, due, summary), due[1])
        except ChatError:
            notes.append("summary_failed")
            break
        store.save_summary(owner, cid, summary)
        due = summary_due(thread, settings, summary, budget, count)
    recalled = []
    if settings.strategy == "recall":
        embedder = default_embedder()
        memories = [Memory(key, text, vector) for key, text, vector in store.memories(owner, cid, embedder.name)]
        fresh = new_memories(thread, {m.key for m in memories}, embedder)
        if fresh:
            store.add_memories(owner, cid, embedder.name, [(m.key, m.text, m.vector) for m in fresh])
        recalled = recall(thread[-1].content, thread, memories + fresh, embedder, settings.recall_k,
                          before=last_turns_from(thread, settings.last_n))
    plan = plan_context(thread, settings, system_prompt, budget, count, summary, recalled)
    plan.notes = notes + plan.notes
    return plan
