"""The stage-2 fold on plain dicts: partials, progress, pending changes, retention."""

from __future__ import annotations

import orjson

from aggregations.partials import PartialsRecord, decode_record, tail_probe
from aggregations.totals import Partial
from aggregations.weeks import WEEK_MS, week_id, week_start_ms
from streams.settings import Settings
from streams.worker.fold import ChangelogBuffer, Fold, PendingChanges, RetentionSchedule

WEEK = "2026-W47"
DAY = "2026-11-17"
KEY = f"model:{WEEK}:acme/model-1"


def no_buffer() -> ChangelogBuffer:
    """The fold's changelog buffer is not used by these tests."""
    raise AssertionError("the changelog buffer is not used here")


def new_fold(settings: Settings | None = None) -> tuple[Fold, dict[str, bytes], dict[str, int]]:
    """A fold over empty dict tables."""
    weekly: dict[str, bytes] = {}
    progress: dict[str, int] = {}
    fold = Fold(settings or Settings(), weekly, progress, PendingChanges(), no_buffer)
    return fold, weekly, progress


def record(
    end: int, tokens: int, *, watermark: int | None = None, key: str = KEY, block: int = 0
) -> PartialsRecord:
    """A partials record of source 3 holding one partial with ``tokens`` cumulative tokens."""
    ts = week_start_ms(WEEK) + 1000
    partial = Partial(
        key=key,
        source=3,
        block=block,
        end=end,
        days={DAY: [tokens, tokens, 0, 1, 0]},
        max_ts=ts,
    )
    return PartialsRecord(
        source=3, block=block, end=end, watermark_ms=watermark, partials=[partial]
    )


def test_retention_check_is_due_first_then_waits_for_the_interval() -> None:
    """A partition's first check is due; the next is due only check_seconds later."""
    schedule = RetentionSchedule(check_seconds=60)
    assert schedule.claim(0, now=100.0, horizon="2026-W01")
    assert not schedule.claim(0, now=159.0, horizon="2026-W01")
    assert schedule.claim(0, now=160.0, horizon="2026-W01")


def test_retention_check_is_due_at_once_when_the_horizon_enters_another_week() -> None:
    """A horizon in another week makes the check due before the interval passed."""
    schedule = RetentionSchedule(check_seconds=60)
    assert schedule.claim(0, now=100.0, horizon="2026-W01")
    assert schedule.claim(0, now=101.0, horizon="2026-W02")
    assert not schedule.claim(0, now=102.0, horizon="2026-W02")


def test_retention_checks_are_tracked_per_partition() -> None:
    """A check of one partition does not delay another partition's first check."""
    schedule = RetentionSchedule(check_seconds=60)
    assert schedule.claim(0, now=100.0, horizon="2026-W01")
    assert schedule.claim(1, now=100.0, horizon="2026-W01")


def test_apply_folds_partials_and_records_changed_days() -> None:
    """A new partial is stored as orjson bytes and its key and days are pending for the snapshot."""
    fold, weekly, _ = new_fold()
    fold.apply(record(end=10, tokens=7), partition=2)
    assert orjson.loads(weekly[KEY])["c"][0] == 7
    assert fold.changes.days == {KEY: {DAY}}
    assert fold.newest_ts_ms == week_start_ms(WEEK) + 1000


def test_apply_adds_only_the_difference_and_ignores_replays() -> None:
    """The same block with a higher end adds the difference; a replayed position changes nothing."""
    fold, weekly, _ = new_fold()
    fold.apply(record(end=10, tokens=7), partition=2)
    fold.apply(record(end=20, tokens=9), partition=2)
    stored = weekly[KEY]
    fold.changes.days.clear()
    fold.apply(record(end=20, tokens=9), partition=2)
    assert weekly[KEY] == stored
    assert orjson.loads(stored)["c"][0] == 9
    assert fold.changes.days == {}


def test_apply_only_moves_progress_forward() -> None:
    """The record's watermark is stored under "X:p" only when it is larger than the one held."""
    fold, _, progress = new_fold()
    fold.apply(record(end=10, tokens=1, watermark=5000), partition=2)
    assert progress == {"2:3": 5000}
    assert fold.changes.progress == {"2:3"}
    fold.changes.progress.clear()
    fold.apply(record(end=20, tokens=2, watermark=4000), partition=2)
    assert progress == {"2:3": 5000}
    assert fold.changes.progress == set()


def test_record_without_watermark_leaves_progress_alone() -> None:
    """A record of a version that sent no watermark sets no progress."""
    fold, _, progress = new_fold()
    fold.apply(record(end=10, tokens=1), partition=2)
    assert progress == {}
    assert fold.changes.progress == set()


def test_expire_old_weeks_drops_keys_past_the_horizon() -> None:
    """Keys of weeks older than retention_weeks before the newest event time are deleted."""
    settings = Settings().replace(partitions=1, retention_weeks=2)
    fold, weekly, _ = new_fold(settings)
    old_week = week_id(week_start_ms(WEEK) - 3 * WEEK_MS)
    old_key = f"model:{old_week}:acme/model-1"
    weekly[old_key] = b"{}"
    fold.apply(record(end=10, tokens=7), partition=0)
    fold.expire_old_weeks(0)
    assert set(weekly) == {KEY}


def test_a_tail_probe_changes_no_table() -> None:
    """Folding a tail probe (sent to reveal a partition's lost tail) leaves every table and
    the pending changes as they were."""
    fold, weekly, progress = new_fold()
    fold.apply(record(10, 500, watermark=week_start_ms(WEEK) + 2000), 1)
    before = (dict(weekly), dict(progress), dict(fold.changes.days), set(fold.changes.progress))
    probe = decode_record(tail_probe())
    assert probe.partials == [] and probe.watermark_ms is None
    fold.apply(probe, 1)
    assert (weekly, progress, fold.changes.days, fold.changes.progress) == before
