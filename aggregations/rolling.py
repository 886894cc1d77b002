"""Answers from daily buckets: rolling windows and week-to-date against last week."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

from aggregations.weeks import days_of_week, previous_week, week_of_day


def days_ending(end_day: str, days: int) -> list[str]:
    """``days`` UTC day ids ending at ``end_day`` (inclusive), oldest first."""
    end = date.fromisoformat(end_day)
    return [(end - timedelta(days=i)).isoformat() for i in range(days - 1, -1, -1)]


def rolling_sum(daily: Mapping[str, int], end_day: str, days: int = 7) -> int:
    """Sum of the ``days`` daily values ending at ``end_day``."""
    return sum(daily.get(day, 0) for day in days_ending(end_day, days))


def week_to_date(daily: Mapping[str, int], day: str) -> tuple[int, int]:
    """(this week up to and including ``day``, last week up to the same weekday).

    Day granularity: comparing Wednesday-to-date with last Monday..Wednesday is the fair
    growth figure while a week is still running.
    """
    week = week_of_day(day)
    this_days = days_of_week(week)
    position = this_days.index(day) + 1
    last_days = days_of_week(previous_week(week))[:position]
    return (
        sum(daily.get(d, 0) for d in this_days[:position]),
        sum(daily.get(d, 0) for d in last_days),
    )
