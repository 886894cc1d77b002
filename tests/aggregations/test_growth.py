"""Week-over-week growth, global growth streaks and country leader streaks."""

from __future__ import annotations

import pytest

from aggregations.growth import growth_streak, leader_streak, wow_pct
from aggregations.weeks import weeks_back


def series(last_week: str, values: list[int]) -> dict[str, int]:
    """Totals for consecutive weeks ending at last_week, oldest value first."""
    return dict(zip(weeks_back(last_week, len(values)), values, strict=True))


@pytest.mark.parametrize(
    ("current", "previous", "expected"),
    [
        (110, 100, 10.0),
        (50, 100, -50.0),
        (0, 100, -100.0),
        (100, 100, 0.0),
        (28_900_000_000_000, 26_908_000_000_000, 7.403002824),
        (1, 3, -66.666666667),
        (100, None, None),
        (100, 0, None),
    ],
)
def test_wow_pct(current: int, previous: int | None, expected: float | None) -> None:
    """wow_pct is (current/previous - 1) * 100, unrounded, None without a previous value."""
    result = wow_pct(current, previous)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("totals", "week", "expected"),
    [
        pytest.param({}, "2026-W47", 0, id="no-data"),
        pytest.param(series("2026-W47", [5]), "2026-W47", 0, id="single-week"),
        pytest.param(series("2026-W47", [1, 2, 3, 4]), "2026-W47", 3, id="all-growth"),
        pytest.param(series("2026-W47", [3, 2, 3, 4]), "2026-W47", 2, id="decline-ends-it"),
        pytest.param(series("2026-W47", [1, 2, 2, 3]), "2026-W47", 1, id="flat-ends-it"),
        pytest.param(series("2026-W47", [1, 2, 3, 2]), "2026-W47", 0, id="decline-this-week"),
        pytest.param(series("2026-W47", [1, 0, 3, 4]), "2026-W47", 1, id="zero-week-ends-it"),
        pytest.param(
            {"2026-W44": 1, "2026-W46": 3, "2026-W47": 4}, "2026-W47", 1, id="gap-ends-it"
        ),
        pytest.param(series("2026-W46", [1, 2, 3]), "2026-W47", 0, id="week-itself-missing"),
        pytest.param(series("2026-W47", [1, 2, 3, 4]), "2026-W46", 2, id="ends-at-given-week"),
        pytest.param(series("2027-W02", [1, 2, 3, 4]), "2027-W02", 3, id="across-2026-W53"),
        pytest.param(
            {"2026-W52": 1, "2027-W01": 2, "2027-W02": 3}, "2027-W02", 1, id="W53-missing"
        ),
    ],
)
def test_growth_streak(totals: dict[str, int], week: str, expected: int) -> None:
    """The streak counts consecutive ISO weeks of strict growth ending at the given week."""
    assert growth_streak(totals, week) == expected


def countries(last_week: str, rows: list[dict[str, int]]) -> dict[str, dict[str, int]]:
    """Country totals for consecutive weeks ending at last_week, oldest first."""
    return dict(zip(weeks_back(last_week, len(rows)), rows, strict=True))


@pytest.mark.parametrize(
    ("by_week", "expected"),
    [
        pytest.param({}, (None, 0), id="no-data"),
        pytest.param(countries("2026-W47", [{}]), (None, 0), id="no-traffic"),
        pytest.param(countries("2026-W47", [{"CN": 5}]), ("CN", 1), id="sole-country"),
        pytest.param(countries("2026-W47", [{"CN": 5, "US": 4}] * 4), ("CN", 4), id="four-weeks"),
        pytest.param(
            countries("2026-W47", [{"US": 5, "CN": 4}, {"CN": 5, "US": 4}]),
            ("CN", 1),
            id="leader-change",
        ),
        pytest.param(
            countries("2026-W47", [{"CN": 5, "US": 4}, {"CN": 5, "US": 5}]),
            ("CN", 0),
            id="tie-this-week",
        ),
        pytest.param(
            countries("2026-W47", [{"CN": 5, "US": 4}, {"CN": 4, "US": 4}, {"CN": 5, "US": 4}]),
            ("CN", 1),
            id="tie-last-week-ends-streak",
        ),
        pytest.param(
            {"2026-W45": {"CN": 5}, "2026-W47": {"CN": 5}}, ("CN", 1), id="gap-ends-streak"
        ),
        pytest.param(
            countries("2026-W47", [{"CN": 5, "US": 4, "FR": 0}, {"CN": 6, "FR": -1}]),
            ("CN", 2),
            id="non-positive-ignored",
        ),
    ],
)
def test_leader_streak(
    by_week: dict[str, dict[str, int]], expected: tuple[str | None, int]
) -> None:
    """The #1 country and its run of weeks strictly ahead of #2, ending at the week."""
    assert leader_streak(by_week, "2026-W47") == expected
