"""The sidebar's list of conversations, grouped as chat apps do: Pinned, Today, Yesterday, Previous 7 days, Older.

Days are the visitor's days: a chat written at 23:30 in Shanghai is "today" there even where it is already
tomorrow in UTC. Plain Python, no Streamlit.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import Generic, Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PINNED, TODAY, YESTERDAY, WEEK, OLDER = "pinned", "today", "yesterday", "previous_7_days", "older"
GROUPS = (PINNED, TODAY, YESTERDAY, WEEK, OLDER)  # in the order they are shown
WEEK_DAYS = 7


class Listed(Protocol):
    @property
    def updated_at(self) -> datetime: ...

    @property
    def pinned(self) -> bool: ...


Item = TypeVar("Item", bound=Listed)


@dataclass(frozen=True)
class Group(Generic[Item]):
    key: str  # one of GROUPS; also the end of its heading's string key (list_group_…)
    items: list[Item]


def visitor_zone(name: str | None) -> tzinfo:
    """The browser's IANA time zone when it sent a valid one, else UTC."""
    if not name:
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: a name such as "../etc" is refused outright
        return timezone.utc


def group_of(updated_at: datetime, now: datetime) -> str:
    """Which dated group a conversation last written at `updated_at` falls in, by calendar days in `now`'s zone."""
    days = (now.date() - updated_at.astimezone(now.tzinfo).date()).days
    if days <= 0:  # today, or a clock a little ahead of this one
        return TODAY
    if days == 1:
        return YESTERDAY
    return WEEK if days <= WEEK_DAYS else OLDER


def group_by_date(items: Iterable[Item], now: datetime) -> list[Group[Item]]:
    """Pinned ones first, the rest by day; each group keeps the items' order, and an empty group is left out.
    `now` must be timezone-aware: its zone says where a day begins."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    grouped: dict[str, list[Item]] = {key: [] for key in GROUPS}
    for item in items:
        grouped[PINNED if item.pinned else group_of(item.updated_at, now)].append(item)
    return [Group(key, grouped[key]) for key in GROUPS if grouped[key]]
