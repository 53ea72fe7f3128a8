"""The embedded model's waiting line: one answer generates at a time, the others wait their turn in order.

llama-cpp-python's server runs one request at a time anyway (a second one blocks inside the server,
unseen); on a 2-core machine two at once would only halve both. Waiting here instead lets the page
say where each visitor stands. Plain Python, no Streamlit: the answer worker holds a place while it
streams, and tells its page the position as it changes.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache

CANCEL_POLL_S = 0.1  # how often a waiter that can be cancelled looks whether it was
# Answers generating at once on the embedded model. llama-cpp-python's server holds one model behind a
# lock and runs one request at a time: a second slot would only move the wait inside the server, unseen.
LOCAL_SLOTS = 1


class LeftQueue(Exception):
    """The waiter was cancelled (Stop) before its turn came; it holds nothing."""


class SlotGate:
    """At most `slots` holders at once; waiters get in strictly first come, first served.

    Positions: 0 = holding a slot (generating), 1 = next in line, 2 = one waiter ahead, and so on.
    """

    def __init__(self, slots: int = 1) -> None:
        if slots < 1:
            raise ValueError("a gate needs at least one slot")
        self.slots = slots
        self._holding: set[object] = set()
        self._waiting: deque[object] = deque()
        self._version = 0  # rises whenever anyone's position may have changed
        self._changed = threading.Condition()

    @property
    def holding(self) -> int:
        with self._changed:
            return len(self._holding)

    @property
    def waiting(self) -> int:
        with self._changed:
            return len(self._waiting)

    @contextmanager
    def acquire(self, on_position: Callable[[int], None] | None = None,
                cancelled: Callable[[], bool] | None = None) -> Iterator[None]:
        """Hold a slot for the `with` block, waiting in line first.

        `on_position(n)` is called (in this thread, outside the gate's lock) with the first position and
        then whenever it changes, ending with 0 when the slot is ours; it is not called again after.
        `cancelled()` is polled while waiting: when it turns true, the place is given up and LeftQueue
        raised. Leaving the block, or any exception, frees the slot for the next in line.
        """
        ticket = object()
        with self._changed:
            self._waiting.append(ticket)
            self._admit()
        try:
            self._wait_for_turn(ticket, on_position, cancelled)
            yield
        finally:
            with self._changed:
                if ticket in self._holding:
                    self._holding.remove(ticket)
                else:
                    self._waiting.remove(ticket)
                self._version += 1
                self._admit()
                self._changed.notify_all()

    def _wait_for_turn(self, ticket: object, on_position: Callable[[int], None] | None,
                       cancelled: Callable[[], bool] | None) -> None:
        told, seen = None, -1
        while True:
            with self._changed:
                self._changed.wait_for(lambda seen=seen: self._version != seen,
                                       timeout=CANCEL_POLL_S if cancelled is not None else None)
                seen = self._version
                position = 0 if ticket in self._holding else self._waiting.index(ticket) + 1
            if position != told and on_position is not None:
                on_position(position)
            told = position
            if position == 0:
                return
            if cancelled is not None and cancelled():
                raise LeftQueue()

    def _admit(self) -> None:
        """Move the head of the line into free slots. Called with the lock held."""
        while self._waiting and len(self._holding) < self.slots:
            self._holding.add(self._waiting.popleft())
        self._version += 1
        self._changed.notify_all()


@cache
def gate_for(server: str) -> SlotGate:
    """The process's one gate for a model server (by its base URL), shared by every answer worker."""
    return SlotGate(LOCAL_SLOTS)
