"""Which history to send each turn: the strategies (plan), rolling summaries, recall memory, and the
preparation step that keeps them up to date for a conversation (prepare).

Writing a summary calls a model: import it from atri.context.summaries, so that the data types here (which
the store imports) do not load the call path."""
from ..embeddings import EMBEDDER_NAME, default_embedder
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
from .recall import Memory, new_memories, recall, turn_key, turns_to_embed

__all__ = ["EMBEDDER_NAME", "STRATEGIES", "ContextPlan", "ContextSettings", "ContextSource", "Memory", "Recalled", "Summarise", "Summary",
           "default_embedder", "input_budget", "last_turns_from", "new_memories", "plan_context", "prepare_context",
           "recall", "summary_due", "summary_messages", "turn_key", "turn_text", "turns_to_embed"]
