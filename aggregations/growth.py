"""Week-over-week growth and streaks over consecutive ISO weeks."""

from __future__ import annotations

from collections.abc import Mapping

from aggregations.rankings import rank
from aggregations.weeks import previous_week

__all__ = ["growth_streak", "leader_streak", "wow_pct"]


def wow_pct(current: int, previous: int | None) -> float | None:
    """Return ``(current / previous - 1) * 100``, or None without a usable previous value.

    The value is not rounded: rounding is a presentation concern.
    """
    if previous is None or previous == 0:
        return None
    return (current / previous - 1) * 100


def growth_streak(totals_by_week: Mapping[str, int], week: str) -> int:
    """Count consecutive weeks, ending at ``week``, whose total strictly beat the week before.

    A missing or zero previous week ends the streak, as does a flat or lower week.
    """
    streak = 0
    current = week
    while True:
        previous = previous_week(current)
        before = totals_by_week.get(previous, 0)
        if before <= 0 or totals_by_week.get(current, 0) <= before:
            return streak
        streak += 1
        current = previous


def _sole_leader(totals: Mapping[str, int] | None) -> str | None:
    """The #1 member when it is strictly ahead of #2, else None."""
    ranking = rank(totals or {})
    if not ranking:
        return None
    if len(ranking) > 1 and ranking[1].tokens == ranking[0].tokens:
        return None
    return ranking[0].member


def leader_streak(
    countries_by_week: Mapping[str, Mapping[str, int]], week: str
) -> tuple[str | None, int]:
    """Return ``week``'s #1 country and how many consecutive weeks it has led outright.

    The streak counts weeks ending at ``week`` in which that same country was #1 strictly
    ahead of #2. A tie at the top of ``week`` gives the tie-break winner with streak 0; no
    ranked country gives ``(None, 0)``.
    """
    ranking = rank(countries_by_week.get(week, {}))
    if not ranking:
        return None, 0
    leader = ranking[0].member
    streak = 0
    current = week
    while _sole_leader(countries_by_week.get(current)) == leader:
        streak += 1
        current = previous_week(current)
    return leader, streak
