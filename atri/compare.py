"""One question to several models at once: the tutorial's AsyncOpenAI + asyncio.gather, streamed."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

from .calls import Target, arun_turn
from .messages import ChatOptions, Message
from .request import build_request
from .turn import Turn


async def _answer(index: int, target: Target, question: Message, options: ChatOptions,
                  on_update: Callable[[int, Turn], None]) -> Turn:
    own_options = replace(options, provider_id=target.connection.provider.id, model=target.model.id)
    plan = build_request([question], own_options, target.model, target.connection.provider)
    turn = None
    async for turn in arun_turn(target.connection, plan, count=target.count):
        on_update(index, turn)
    return turn


async def compare(targets: list[Target], question: Message, options: ChatOptions,
                  on_update: Callable[[int, Turn], None] = lambda index, turn: None) -> list[Turn]:
    """Every target answers at once; `on_update(i, turn)` runs (in this thread) as each answer grows."""
    return list(await asyncio.gather(*(_answer(i, t, question, options, on_update) for i, t in enumerate(targets))))
