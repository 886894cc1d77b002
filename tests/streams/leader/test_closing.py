"""When a week closes, when its total counts as settled, and the ids of live changes."""

from __future__ import annotations

from aggregations.rankings import Ranked
from aggregations.weeks import week_end_ms
from streams.leader.closing import SETTLE_MS, SettleWatch, live_basis, live_event_id, week_due

WEEK = "2026-W47"
END = week_end_ms(WEEK)
GRACE = 3_600_000
IDLE = 300_000


def test_due_once_slowest_partition_passed_end_and_grace() -> None:
    """The closing watermark at the week's end plus grace closes it, whatever the clock."""
    assert week_due(WEEK, END + GRACE, now_ms=0, changed_at_ms=0, grace_ms=GRACE, idle_ms=IDLE)
    assert not week_due(
        WEEK, END + GRACE - 1, now_ms=0, changed_at_ms=0, grace_ms=GRACE, idle_ms=IDLE
    )


def test_due_on_the_wall_clock_when_idle() -> None:
    """Past end plus grace on the wall clock, a week closes once snapshots were idle."""
    now = END + GRACE
    assert week_due(WEEK, 0, now_ms=now, changed_at_ms=now - IDLE, grace_ms=GRACE, idle_ms=IDLE)


def test_not_due_on_the_wall_clock_while_data_changes() -> None:
    """A snapshot that changed something less than the idle time ago keeps the week open."""
    now = END + GRACE
    assert not week_due(
        WEEK, 0, now_ms=now, changed_at_ms=now - IDLE + 1, grace_ms=GRACE, idle_ms=IDLE
    )


def test_not_due_before_end_plus_grace_even_if_idle() -> None:
    """Idle snapshots do not close a week before its end plus grace on the wall clock."""
    now = END + GRACE - 1
    assert not week_due(WEEK, 0, now_ms=now, changed_at_ms=0, grace_ms=GRACE, idle_ms=IDLE)


def test_settled_after_standing_still() -> None:
    """A total is settled once unchanged for SETTLE_MS since it was first seen."""
    watch = SettleWatch()
    assert not watch.settled(WEEK, "100", 1_000)
    assert not watch.settled(WEEK, "100", 1_000 + SETTLE_MS - 1)
    assert watch.settled(WEEK, "100", 1_000 + SETTLE_MS)


def test_settle_restarts_on_change() -> None:
    """A changed total starts the wait again from when it was seen."""
    watch = SettleWatch()
    watch.settled(WEEK, "100", 0)
    assert not watch.settled(WEEK, "101", SETTLE_MS)
    assert not watch.settled(WEEK, "101", 2 * SETTLE_MS - 1)
    assert watch.settled(WEEK, "101", 2 * SETTLE_MS)


def test_settle_is_per_week() -> None:
    """Each week waits on its own total."""
    watch = SettleWatch()
    watch.settled(WEEK, "100", 0)
    assert not watch.settled("2026-W48", "100", SETTLE_MS)


def test_missing_total_settles_too() -> None:
    """A week without a total (None) settles like any unchanged value."""
    watch = SettleWatch()
    watch.settled(WEEK, None, 0)
    assert watch.settled(WEEK, None, SETTLE_MS)


def test_live_basis_depends_on_members_and_ranks_only() -> None:
    """The basis of a live change is the published members and ranks, not their tokens."""
    before = [Ranked(1, "a", 10), Ranked(2, "b", 5)]
    assert live_basis(before) == live_basis([Ranked(1, "a", 99), Ranked(2, "b", 1)])
    assert live_basis(before) != live_basis([Ranked(1, "b", 10), Ranked(2, "a", 5)])


def test_live_event_id_tells_repeated_moves_apart() -> None:
    """The same change from two different published lists gets two ids, each deterministic."""
    first = live_basis([Ranked(1, "a", 10)])
    second = live_basis([Ranked(1, "b", 10)])
    assert live_event_id("change", first) == live_event_id("change", first)
    assert live_event_id("change", first) != live_event_id("change", second)
