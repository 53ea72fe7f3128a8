"""Which history to send each turn: the strategies (plan), rolling summaries, recall memory, and the
preparation step that keeps them up to date for a conversation (prepare)."""
from .plan import (
    STRATEGIES,
    ContextPlan,
    ContextSettings,
    Recalled,
    Summary,
    input_budget,
    last_turns_from,
    plan_context,
    summary_due,
    summary_messages,
    turn_text,
)
from .prepare import ContextSource, Summarise, prepare_context
from .recall import EMBEDDER_NAME, Memory, default_embedder, new_memories, recall, turn_key, turns_to_embed
from .summaries import write_summary

__all__ = ["EMBEDDER_NAME", "STRATEGIES", "ContextPlan", "ContextSettings", "ContextSource", "Memory", "Recalled", "Summarise", "Summary",
           "default_embedder", "input_budget", "last_turns_from", "new_memories", "plan_context", "prepare_context",
           "recall", "summary_due", "summary_messages", "turn_key", "turn_text", "turns_to_embed", "write_summary"]
