"""Redrawing at most every so often: a growing text redrawn on every token would cost O(n²)."""
from __future__ import annotations

import time

REDRAW_INTERVAL_S = 0.05


class Throttle:
    """`if throttle.due(): draw()` — true at most once per interval, and always for the last draw."""

    def __init__(self, interval_s: float = REDRAW_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._last = float("-inf")

    def wait_s(self) -> float:
        """How long until the next draw is due."""
        return max(0.0, self.interval_s - (time.perf_counter() - self._last))

    def due(self, final: bool = False) -> bool:
        now = time.perf_counter()
        if not final and now - self._last < self.interval_s:
            return False
        self._last = now
        return True
