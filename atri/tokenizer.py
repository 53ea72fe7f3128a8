"""Which tokenizer counts a model's tokens when the server reports none."""
from __future__ import annotations

from pathlib import Path

from .local import LocalModelError, bundled_token_counter
from .tokens import TokenCounter, rough_count

QWEN_PREFIXES = ("qwen", "qwq", "qvq")


def counter_for(model_id: str, models_dir: Path) -> TokenCounter:
    """Qwen models: the Qwen2 vocabulary of the bundled GGUF (in `models_dir`, the configured cache);
    others: the documented rough estimate."""
    if model_id.lower().startswith(QWEN_PREFIXES):
        try:
            return bundled_token_counter(models_dir)
        except (LocalModelError, OSError):
            return rough_count
    return rough_count
