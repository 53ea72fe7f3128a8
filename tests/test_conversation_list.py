"""The sidebar's groups (issue 30): pinned first, then the visitor's own days; no empty heading."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from atri.conversation_list import group_by_date, group_of, visitor_zone

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=SHANGHAI)  # a Tuesday morning in Shanghai


@dataclass(frozen=True)
class Chat:
    title: str
    updated_at: datetime
    pinned: bool = False


def titles(groups):
    return [(group.key, [chat.title for chat in group.items]) for group in groups]


def test_pinned_chats_come_first_whatever_their_age_and_each_group_keeps_the_lists_order():
    chats = [Chat("old but pinned", NOW - timedelta(days=400), pinned=True),
             Chat("pinned today", NOW - timedelta(minutes=5), pinned=True),
             Chat("just now", NOW - timedelta(minutes=1)),
             Chat("this morning", NOW - timedelta(hours=2)),
             Chat("last night", NOW - timedelta(hours=12)),
             Chat("three days ago", NOW - timedelta(days=3)),
             Chat("a week ago", NOW - timedelta(days=7)),
             Chat("last month", NOW - timedelta(days=30))]
    assert titles(group_by_date(chats, NOW)) == [
        ("pinned", ["old but pinned", "pinned today"]),
        ("today", ["just now", "this morning"]),
        ("yesterday", ["last night"]),
        ("previous_7_days", ["three days ago", "a week ago"]),
        ("older", ["last month"]),
    ]


def test_empty_groups_are_left_out():
    assert titles(group_by_date([Chat("ancient", NOW - timedelta(days=90))], NOW)) == [("older", ["ancient"])]
    assert group_by_date([], NOW) == []


def test_a_day_begins_at_midnight_where_the_visitor_is_not_in_utc():
    # 00:30 in Shanghai is 16:30 UTC the day before: for this visitor it is already today.
    after_midnight = datetime(2026, 3, 10, 0, 30, tzinfo=SHANGHAI).astimezone(timezone.utc)
    before_midnight = datetime(2026, 3, 9, 23, 59, tzinfo=SHANGHAI).astimezone(timezone.utc)
    assert group_of(after_midnight, NOW) == "today"
    assert group_of(before_midnight, NOW) == "yesterday"
    # The same moments seen by a visitor in UTC, at the same instant: both were "yesterday" (9 March) there…
    now_utc = NOW.astimezone(timezone.utc)  # 01:00 UTC on 10 March
    assert group_of(after_midnight, now_utc) == "yesterday"
    assert group_of(before_midnight, now_utc) == "yesterday"


@pytest.mark.parametrize("days_ago, group", [(0, "today"), (1, "yesterday"), (2, "previous_7_days"),
                                             (7, "previous_7_days"), (8, "older")])
def test_calendar_days_decide_not_hours(days_ago, group):
    at_start_of_that_day = datetime(2026, 3, 10 - days_ago, 0, 0, tzinfo=SHANGHAI)
    assert group_of(at_start_of_that_day, NOW.replace(hour=23, minute=59)) == group


def test_a_clock_a_little_ahead_still_counts_as_today():
    assert group_of(NOW + timedelta(minutes=3), NOW) == "today"


def test_now_must_say_its_zone():
    with pytest.raises(ValueError):
        group_by_date([], datetime(2026, 3, 10))


@pytest.mark.parametrize("name, expected", [("Asia/Shanghai", "Asia/Shanghai"), (None, "UTC"), ("", "UTC"),
                                            ("Not/AZone", "UTC"), ("../../etc/passwd", "UTC")])
def test_the_browsers_zone_is_used_when_valid_else_utc(name, expected):
    assert str(visitor_zone(name)) == expected
