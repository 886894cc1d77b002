"""ISO week and UTC day arithmetic on epoch milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregations.weeks import (
    DAY_MS,
    WEEK_MS,
    day_id,
    days_of_week,
    next_week,
    parse_week,
    previous_week,
    week_end_ms,
    week_id,
    week_of_day,
    week_start_ms,
    weeks_back,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, milli: int = 0
) -> int:
    """Epoch milliseconds of a UTC wall time, exactly (no float round trip)."""
    moment = datetime(year, month, day, hour, minute, second, milli * 1000, tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("ts_ms", "expected"),
    [
        (ms(2026, 11, 16, 0, 0, 0), "2026-W47"),
        (ms(2026, 11, 19, 12, 30, 0), "2026-W47"),
        (ms(2026, 11, 22, 23, 59, 59, 999), "2026-W47"),
        (ms(2026, 11, 23, 0, 0, 0), "2026-W48"),
        (ms(2026, 11, 15, 23, 59, 59, 999), "2026-W46"),
        (ms(2026, 1, 1, 0, 0, 0), "2026-W01"),
        (ms(2026, 12, 31, 23, 59, 59, 999), "2026-W53"),
        (ms(2027, 1, 1, 0, 0, 0), "2026-W53"),
        (ms(2027, 1, 3, 23, 59, 59, 999), "2026-W53"),
        (ms(2027, 1, 4, 0, 0, 0), "2027-W01"),
        (ms(2020, 12, 31, 0, 0, 0), "2020-W53"),
        (ms(2021, 1, 3, 12, 0, 0), "2020-W53"),
        (ms(2021, 1, 4, 0, 0, 0), "2021-W01"),
        (ms(2024, 12, 30, 0, 0, 0), "2025-W01"),
        (ms(2023, 1, 1, 0, 0, 0), "2022-W52"),
        (0, "1970-W01"),
        (-1, "1970-W01"),
        (ms(1969, 12, 28, 23, 59, 59, 999), "1969-W52"),
    ],
)
def test_week_id(ts_ms: int, expected: str) -> None:
    """An instant maps to the ISO week (ISO year, zero-padded number) of its UTC date."""
    assert week_id(ts_ms) == expected


@pytest.mark.parametrize(
    ("week", "start"),
    [
        ("2026-W47", ms(2026, 11, 16, 0, 0, 0)),
        ("2026-W01", ms(2025, 12, 29, 0, 0, 0)),
        ("2026-W53", ms(2026, 12, 28, 0, 0, 0)),
        ("2027-W01", ms(2027, 1, 4, 0, 0, 0)),
        ("2020-W53", ms(2020, 12, 28, 0, 0, 0)),
        ("2025-W01", ms(2024, 12, 30, 0, 0, 0)),
        ("1970-W01", ms(1969, 12, 29, 0, 0, 0)),
    ],
)
def test_week_bounds(week: str, start: int) -> None:
    """A week starts Monday 00:00 UTC and ends, exclusively, at the next Monday 00:00 UTC."""
    assert week_start_ms(week) == start
    assert week_end_ms(week) == start + WEEK_MS
    assert week_id(week_start_ms(week)) == week
    assert week_id(week_end_ms(week) - 1) == week
    assert week_id(week_end_ms(week)) == next_week(week)


def test_seed_week_starts_on_monday_2026_11_16() -> None:
    """2026-W47, the seed week, spans Monday 2026-11-16 to Monday 2026-11-23 (UTC)."""
    assert week_start_ms("2026-W47") == ms(2026, 11, 16, 0, 0, 0)
    assert week_end_ms("2026-W47") == ms(2026, 11, 23, 0, 0, 0)


@pytest.mark.parametrize(
    ("year", "has_week_53"),
    [
        (2015, True),
        (2020, True),
        (2026, True),
        (2032, True),
        (2021, False),
        (2024, False),
        (2025, False),
        (2027, False),
    ],
)
def test_week_53_exists_only_in_long_years(year: int, has_week_53: bool) -> None:
    """Week 53 is a valid id only in ISO years that have 53 weeks."""
    week = f"{year}-W53"
    if has_week_53:
        assert parse_week(week) == (year, 53)
        assert next_week(week) == f"{year + 1}-W01"
    else:
        with pytest.raises(ValueError, match=f"ISO year {year} has no week 53"):
            parse_week(week)


@pytest.mark.parametrize(
    ("week", "expected"),
    [("2026-W47", (2026, 47)), ("2026-W01", (2026, 1)), ("0001-W01", (1, 1))],
)
def test_parse_week(week: str, expected: tuple[int, int]) -> None:
    """A well-formed id splits into its ISO year and week number."""
    assert parse_week(week) == expected


@pytest.mark.parametrize(
    "week",
    [
        "",
        "2026-47",
        "2026-W7",
        "2026-W047",
        "2026-w47",
        "26-W47",
        " 2026-W47",
        "2026-W47\n",
        "2026-W00",
        "2026-W54",
        "2026-W47-1",
        "2026W47",
    ],
)
def test_parse_week_rejects_bad_ids(week: str) -> None:
    """Malformed or out-of-range week ids raise ValueError naming the bad id."""
    with pytest.raises(ValueError, match="invalid week id"):
        parse_week(week)


@pytest.mark.parametrize(
    "function", [week_start_ms, week_end_ms, previous_week, next_week, days_of_week]
)
def test_week_functions_validate_their_input(function: object) -> None:
    """Every function taking a week id rejects a bad one instead of guessing."""
    with pytest.raises(ValueError, match="invalid week id"):
        function("2026-W99")  # type: ignore[operator]


@pytest.mark.parametrize(
    ("week", "before"),
    [
        ("2026-W47", "2026-W46"),
        ("2027-W01", "2026-W53"),
        ("2021-W01", "2020-W53"),
        ("2026-W01", "2025-W52"),
        ("2025-W01", "2024-W52"),
    ],
)
def test_previous_and_next_week(week: str, before: str) -> None:
    """Stepping one week back and forth crosses ISO year boundaries correctly."""
    assert previous_week(week) == before
    assert next_week(before) == week


@pytest.mark.parametrize(
    ("ts_ms", "expected"),
    [
        (ms(2026, 11, 22, 23, 59, 59, 999), "2026-11-22"),
        (ms(2026, 11, 23, 0, 0, 0), "2026-11-23"),
        (0, "1970-01-01"),
        (-1, "1969-12-31"),
    ],
)
def test_day_id(ts_ms: int, expected: str) -> None:
    """An instant maps to its UTC calendar day."""
    assert day_id(ts_ms) == expected


@pytest.mark.parametrize(
    ("day", "week"),
    [
        ("2026-11-16", "2026-W47"),
        ("2026-11-22", "2026-W47"),
        ("2027-01-01", "2026-W53"),
        ("2027-01-04", "2027-W01"),
        ("2024-12-30", "2025-W01"),
    ],
)
def test_week_of_day(day: str, week: str) -> None:
    """A UTC day belongs to the ISO week of its date, including across year ends."""
    assert week_of_day(day) == week


@pytest.mark.parametrize("day", ["2026-13-01", "2026-02-30", "20261116", "2026-11-16T00:00", ""])
def test_week_of_day_rejects_bad_days(day: str) -> None:
    """Only real dates spelled YYYY-MM-DD are accepted as day ids."""
    with pytest.raises(ValueError, match="invalid day id"):
        week_of_day(day)


@pytest.mark.parametrize(
    ("week", "days"),
    [
        (
            "2026-W47",
            [
                "2026-11-16",
                "2026-11-17",
                "2026-11-18",
                "2026-11-19",
                "2026-11-20",
                "2026-11-21",
                "2026-11-22",
            ],
        ),
        (
            "2026-W53",
            [
                "2026-12-28",
                "2026-12-29",
                "2026-12-30",
                "2026-12-31",
                "2027-01-01",
                "2027-01-02",
                "2027-01-03",
            ],
        ),
    ],
)
def test_days_of_week(week: str, days: list[str]) -> None:
    """A week has seven UTC days, Monday first, possibly spanning two calendar years."""
    assert days_of_week(week) == days


@pytest.mark.parametrize(
    ("week", "n", "expected"),
    [
        ("2026-W47", 0, []),
        ("2026-W47", 1, ["2026-W47"]),
        ("2026-W47", 3, ["2026-W45", "2026-W46", "2026-W47"]),
        ("2027-W02", 3, ["2026-W53", "2027-W01", "2027-W02"]),
    ],
)
def test_weeks_back(week: str, n: int, expected: list[str]) -> None:
    """weeks_back lists n consecutive weeks ending at the given one, oldest first."""
    assert weeks_back(week, n) == expected


def test_weeks_back_rejects_negative_count() -> None:
    """A negative number of weeks is a caller bug, not an empty list."""
    with pytest.raises(ValueError, match="n must be >= 0"):
        weeks_back("2026-W47", -1)


# Year 1900 to 2200, both sides of the epoch.
_INSTANTS = st.integers(min_value=-2_208_988_800_000, max_value=7_258_118_400_000)


@given(_INSTANTS)
def test_every_instant_lies_inside_its_week(ts_ms: int) -> None:
    """week_start_ms(week_id(t)) <= t < week_end_ms(week_id(t)) for every instant."""
    week = week_id(ts_ms)
    assert week_start_ms(week) <= ts_ms < week_end_ms(week)
    assert (week_start_ms(week) // DAY_MS + 3) % 7 == 0  # 1970-01-01 was a Thursday
    assert week_of_day(day_id(ts_ms)) == week
    assert day_id(ts_ms) in days_of_week(week)


@given(_INSTANTS)
def test_week_steps_are_inverse(ts_ms: int) -> None:
    """previous_week and next_week undo each other and move exactly seven days."""
    week = week_id(ts_ms)
    assert next_week(previous_week(week)) == week
    assert week_start_ms(next_week(week)) == week_end_ms(week)
    assert week_end_ms(previous_week(week)) == week_start_ms(week)
