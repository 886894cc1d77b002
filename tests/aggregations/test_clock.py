"""The watermark never runs ahead of the wall clock by more than a minute (issue 17, item 7)."""

from __future__ import annotations

from aggregations.clock import MAX_LEAD_MS, bounded_event_time, watermark_cap
from aggregations.partials import BlockAccumulator
from aggregations.weeks import week_end_ms, week_id, week_start_ms

HOUR = 3_600_000
# Sunday 2026-11-22 23:00 UTC: the last hour of 2026-W47.
SUNDAY_LATE = week_end_ms("2026-W47") - HOUR


def test_bounded_event_time() -> None:
    """Event times up to a minute ahead pass; later ones are cut to the clock plus a minute."""
    now = SUNDAY_LATE
    assert bounded_event_time(now - 5, now) == now - 5
    assert bounded_event_time(now + MAX_LEAD_MS, now) == now + MAX_LEAD_MS
    assert bounded_event_time(now + 20 * HOUR, now) == watermark_cap(now) == now + MAX_LEAD_MS


def test_a_skewed_event_does_not_move_the_watermark_into_next_week() -> None:
    """One event 20 h ahead, on Sunday night, is counted in its week (next week) while the
    partition's watermark, which the current week, closing and retention follow, stays in
    this week; it moves on with the next honest event once the clock gets there."""
    acc = BlockAccumulator(source=0, block=0, grace_ms=HOUR)
    acc.watermark_cap_ms = watermark_cap(SUNDAY_LATE)
    acc.add(0, SUNDAY_LATE - 60_000, "m1", "V", "US", "M1", 10, 0, 1)
    acc.add(1, SUNDAY_LATE + 20 * HOUR, "m1", "V", "US", "M1", 10, 0, 1)
    assert week_id(acc.watermark_ms) == "2026-W47"
    assert acc.watermark_ms == SUNDAY_LATE + MAX_LEAD_MS
    weeks = {p.key for p in acc.drain()}
    assert "total:2026-W48:all" in weeks and "total:2026-W47:all" in weeks

    # The clock reaches Monday: the next event moves the watermark into 2026-W48.
    monday = week_start_ms("2026-W48") + 2 * HOUR
    acc.watermark_cap_ms = watermark_cap(monday)
    acc.add(2, monday, "m1", "V", "US", "M1", 10, 0, 1)
    assert week_id(acc.watermark_ms) == "2026-W48"


def test_a_skewed_event_is_not_late_for_the_events_after_it() -> None:
    """Had the watermark jumped a day ahead, the honest events of the week before it would
    all be flagged late once their week's grace passed; bounded, none is."""
    acc = BlockAccumulator(source=0, block=0, grace_ms=HOUR)
    acc.watermark_cap_ms = watermark_cap(SUNDAY_LATE)
    acc.add(0, SUNDAY_LATE + 20 * HOUR, "m1", "V", "US", "M1", 10, 0, 1)
    assert not acc.add(1, SUNDAY_LATE + 1000, "m1", "V", "US", "M1", 10, 0, 1)


def test_without_a_cap_event_time_is_unbounded() -> None:
    """The pure accumulator alone (replays, tests) keeps plain event time."""
    acc = BlockAccumulator(source=0, block=0, grace_ms=HOUR)
    acc.add(0, SUNDAY_LATE + 20 * HOUR, "m1", "V", "US", "M1", 10, 0, 1)
    assert acc.watermark_ms == SUNDAY_LATE + 20 * HOUR
