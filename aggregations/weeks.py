"""ISO 8601 weeks and UTC days on integer epoch milliseconds.

Week ids look like ``2026-W47`` and use the ISO week-numbering year, so the last days of
December can belong to week 1 of the next year and the first days of January to week 52 or
53 of the previous one. A week runs from Monday 00:00 UTC (inclusive) to the next Monday
00:00 UTC (exclusive).
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from aggregations.errors import InvalidInput

__all__ = [
    "DAY_MS",
    "WEEK_MS",
    "day_id",
    "days_of_week",
    "next_week",
    "parse_day",
    "parse_week",
    "previous_week",
    "week_end_ms",
    "week_id",
    "week_of_day",
    "week_start_ms",
    "weeks_back",
]

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS

_EPOCH = date(1970, 1, 1)
_WEEK_RE = re.compile(r"(\d{4})-W(\d{2})")
# date.fromisoformat also accepts "20261116" and week dates; day ids must have one spelling.
_DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _date_of_ms(ts_ms: int) -> date:
    # Floor division keeps pre-1970 instants in the right day; no float rounding involved.
    return _EPOCH + timedelta(days=ts_ms // DAY_MS)


def _ms_of_date(day: date) -> int:
    return (day - _EPOCH).days * DAY_MS


def _format_week(year: int, week: int) -> str:
    return f"{year:04d}-W{week:02d}"


def _monday(week: str) -> date:
    year, number = parse_week(week)
    return date.fromisocalendar(year, number, 1)


def parse_week(week: str) -> tuple[int, int]:
    """Split an ISO week id such as ``2026-W47`` into ``(iso_year, week_number)``.

    Raises ValueError when the id is malformed or names a week its year does not have
    (only years starting or ending on a Thursday have a week 53).
    """
    match = _WEEK_RE.fullmatch(week) if isinstance(week, str) else None
    if match is None:
        raise InvalidInput(f"invalid week id {week!r}: expected 'YYYY-Www', e.g. '2026-W47'")
    year, number = int(match.group(1)), int(match.group(2))
    try:
        date.fromisocalendar(year, number, 1)
    except ValueError:
        raise InvalidInput(
            f"invalid week id {week!r}: ISO year {year} has no week {number}"
        ) from None
    return year, number


def week_id(ts_ms: int) -> str:
    """Return the ISO week id (``YYYY-Www``, UTC) containing the instant ``ts_ms``."""
    year, number, _ = _date_of_ms(ts_ms).isocalendar()
    return _format_week(year, number)


def week_start_ms(week: str) -> int:
    """Return the first millisecond of ``week``: its Monday 00:00 UTC."""
    return _ms_of_date(_monday(week))


def week_end_ms(week: str) -> int:
    """Return the exclusive end of ``week``: the following Monday 00:00 UTC."""
    return week_start_ms(week) + WEEK_MS


def previous_week(week: str) -> str:
    """Return the ISO week id immediately before ``week``."""
    year, number, _ = (_monday(week) - timedelta(days=7)).isocalendar()
    return _format_week(year, number)


def next_week(week: str) -> str:
    """Return the ISO week id immediately after ``week``."""
    year, number, _ = (_monday(week) + timedelta(days=7)).isocalendar()
    return _format_week(year, number)


def day_id(ts_ms: int) -> str:
    """Return the UTC calendar day (``YYYY-MM-DD``) containing the instant ``ts_ms``."""
    return _date_of_ms(ts_ms).isoformat()


def parse_day(day: str) -> date:
    """The date of a day id ``YYYY-MM-DD``; ValueError naming the id otherwise."""
    if not isinstance(day, str) or _DAY_RE.fullmatch(day) is None:
        raise InvalidInput(f"invalid day id {day!r}: expected 'YYYY-MM-DD'")
    try:
        return date.fromisoformat(day)
    except ValueError as exc:
        raise InvalidInput(f"invalid day id {day!r}: {exc}") from None


def week_of_day(day: str) -> str:
    """Return the ISO week id containing the UTC day ``day`` (``YYYY-MM-DD``)."""
    year, number, _ = parse_day(day).isocalendar()
    return _format_week(year, number)


def days_of_week(week: str) -> list[str]:
    """Return the seven day ids of ``week``, Monday first."""
    monday = _monday(week)
    return [(monday + timedelta(days=offset)).isoformat() for offset in range(7)]


def weeks_back(week: str, n: int) -> list[str]:
    """Return the ``n`` consecutive week ids ending at ``week``, oldest first.

    ``n == 0`` gives an empty list; a negative ``n`` raises ValueError.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    monday = _monday(week)
    weeks: list[str] = []
    for back in range(n - 1, -1, -1):
        year, number, _ = (monday - timedelta(days=7 * back)).isocalendar()
        weeks.append(_format_week(year, number))
    return weeks
