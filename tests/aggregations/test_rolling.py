"""Rolling windows and week-to-date comparisons from daily buckets."""

from __future__ import annotations

import pytest

from aggregations.rolling import days_ending, rolling_sum, week_to_date

DAILY = {
    "2026-11-09": 1,  # Monday of 2026-W46
    "2026-11-10": 2,
    "2026-11-11": 4,
    "2026-11-15": 8,  # Sunday of 2026-W46
    "2026-11-16": 16,  # Monday of 2026-W47
    "2026-11-17": 32,
    "2026-11-18": 64,
}


def test_days_ending_spans_month_boundaries() -> None:
    """Day ids count back across a month boundary, oldest first."""
    assert days_ending("2026-12-02", 3) == ["2026-11-30", "2026-12-01", "2026-12-02"]


@pytest.mark.parametrize(
    ("end_day", "days", "expected"),
    [("2026-11-18", 7, 8 + 16 + 32 + 64), ("2026-11-18", 1, 64), ("2026-11-15", 7, 15)],
)
def test_rolling_sum(end_day: str, days: int, expected: int) -> None:
    """A rolling window sums exactly the days it covers."""
    assert rolling_sum(DAILY, end_day, days) == expected


@pytest.mark.parametrize(
    ("day", "expected"),
    [("2026-11-16", (16, 1)), ("2026-11-18", (112, 7)), ("2026-11-22", (112, 15))],
)
def test_week_to_date_against_same_point_last_week(day: str, expected: tuple[int, int]) -> None:
    """Week-to-date compares with last week up to the same weekday."""
    assert week_to_date(DAILY, day) == expected
