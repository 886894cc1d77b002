"""Retention: which weeks expire, and the keys of a week that are deleted by name."""

from __future__ import annotations

import time

from aggregations.totals import DIMENSIONS, RANKED_DIMENSIONS
from aggregations.weeks import WEEK_MS, week_end_ms, week_start_ms
from streams.leader.retention import daily_keys, expired_weeks, member_patterns, week_keys
from streams.store.keys import RedisKeys

KEYS = RedisKeys("tb")


def test_week_ending_at_the_horizon_expires() -> None:
    """A week whose end is exactly retention weeks before the watermark expires."""
    watermark = week_end_ms("2026-W20") + 4 * WEEK_MS
    assert expired_weeks(["2026-W20", "2026-W21"], watermark, retention_weeks=4) == ["2026-W20"]


def test_week_ending_after_the_horizon_is_kept() -> None:
    """A week that ends one millisecond after the horizon is kept."""
    watermark = week_end_ms("2026-W20") + 4 * WEEK_MS - 1
    assert expired_weeks(["2026-W20"], watermark, retention_weeks=4) == []


def test_expired_weeks_oldest_first_once() -> None:
    """Expired weeks come oldest first, each once, across a year boundary."""
    weeks = ["2026-W02", "2025-W52", "2026-W01", "2025-W52", "2026-W30"]
    watermark = week_start_ms("2026-W30")
    assert expired_weeks(weeks, watermark, retention_weeks=26) == [
        "2025-W52",
        "2026-W01",
        "2026-W02",
    ]


def test_member_patterns_hold_the_week_as_a_whole_segment() -> None:
    """Member hashes are scanned under ``m:{dimension}:{week}:``, never ``*{week}*``: a member
    of another week whose name contains this week's id does not match."""
    assert member_patterns(KEYS, "2026-W20") == [
        f"tb:m:{dimension}:2026-W20:*" for dimension in RANKED_DIMENSIONS
    ]


def test_member_patterns_escape_glob_characters_of_the_prefix() -> None:
    """A prefix with ``*`` or ``[`` matches only itself."""
    assert member_patterns(RedisKeys("a*[b]"), "2026-W20")[0] == "a\\*\\[b\\]:m:model:2026-W20:*"


def test_week_keys_name_every_board_total_and_day_of_the_week() -> None:
    """The week's total, its leaderboards (by tokens and by spend), published lists and all
    daily boards, the total's included (they were left behind before)."""
    keys = week_keys(KEYS, "2026-W47")
    assert "tb:total:2026-W47" in keys
    assert {f"tb:lb:{d}:2026-W47" for d in RANKED_DIMENSIONS} <= set(keys)
    assert {f"tb:published:{d}:2026-W47" for d in RANKED_DIMENSIONS} <= set(keys)
    assert {f"tb:spend:{d}:2026-W47" for d in RANKED_DIMENSIONS} <= set(keys)
    assert "tb:day:total:2026-11-16" in keys and "tb:day:total:2026-11-22" in keys
    assert all("2026-W47" in k or k.startswith("tb:day:") for k in keys)


def test_daily_keys_cover_seven_days_per_dimension() -> None:
    """The week's daily boards are its seven UTC days, Monday first, per dimension."""
    keys = daily_keys(KEYS, "2026-W01")
    assert len(keys) == 7 * len(DIMENSIONS)
    assert keys[0] == f"tb:day:{DIMENSIONS[0]}:2025-12-29"
    assert keys[-1] == f"tb:day:{DIMENSIONS[-1]}:2026-01-04"


def test_daily_keys_are_the_days_from_the_week_start() -> None:
    """The days are those of the week's start plus 0 to 6 days in UTC, day by day."""
    week = "2026-W47"
    start = week_start_ms(week)
    days = [
        time.strftime("%Y-%m-%d", time.gmtime((start + offset * 86_400_000) / 1000))
        for offset in range(7)
    ]
    expected = [KEYS.daily(dimension, day) for day in days for dimension in DIMENSIONS]
    assert daily_keys(KEYS, week) == expected


def test_week_keys_name_the_no_app_hash() -> None:
    """The hash of the app of events without one is on no board: retention names it."""
    keys = week_keys(KEYS, "2026-W47")
    assert "tb:m:app:2026-W47:" in keys
    assert {"tb:lb:app:2026-W47", "tb:published:app:2026-W47"} <= set(keys)
    assert "tb:day:app:2026-11-16" in keys
    assert "tb:m:app:2026-W47:*" in member_patterns(KEYS, "2026-W47")
