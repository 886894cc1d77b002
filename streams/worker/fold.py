"""Stage 2: folding partials records into the tables ``weekly`` and ``progress``.

The fold is idempotent (see ARCHITECTURE.md, "Exact counts without Kafka transactions"):
each table value keeps the last position applied per source, and a replayed partial is a
no-op. Besides the fold itself this module keeps Faust's changelog buffer short and drops
the keys of weeks past the retention horizon.

The tables are typed as mappings, so the fold can be exercised on plain dicts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from aggregations.clock import watermark_cap
from aggregations.partials import PartialsRecord, decode_record, partition_for
from aggregations.progress import progress_field
from aggregations.totals import apply_partial, expired_keys
from aggregations.weeks import WEEK_MS, week_id
from streams import metrics
from streams.settings import Settings

log = logging.getLogger("tokenboard.worker")

#: Changelog records waiting in Faust's producer buffer before the fold waits for them.
CHANGELOG_BUFFER_MAX = 5000


class ChangelogBuffer(Protocol):
    """What the fold uses of Faust's producer buffer (``app.producer.buffer``)."""

    @property
    def size(self) -> int:
        """Records waiting to be sent."""
        ...

    async def flush_atmost(self, n: int) -> int:
        """Send up to ``n`` records; how many were sent."""
        ...


@dataclass
class PendingChanges:
    """What the fold changed since the snapshot job last took it."""

    #: table key -> days changed since the last snapshot
    days: dict[str, set[str]] = field(default_factory=dict)
    #: progress fields ("X:p") changed since the last snapshot
    progress: set[str] = field(default_factory=set)


class RetentionSchedule:
    """Decides when a partition's keys are checked against the retention horizon."""

    def __init__(self, check_seconds: float) -> None:
        self.check_seconds = check_seconds
        # partition -> (monotonic time, week of the retention horizon) of its last expiry check
        self._checked: dict[int, tuple[float, str]] = {}

    def claim(self, partition: int, now: float, horizon: str) -> bool:
        """True, and the check is recorded as done at ``now``, when ``partition`` is due.

        A partition is due every ``check_seconds``, and at once when the horizon entered
        another week since its last check: the record that triggered that check may have
        come before the newest event time (an empty, watermark-only record), and a
        partition may get no further record for a long time.
        """
        checked_at, checked_horizon = self._checked.get(partition, (-1e18, ""))
        if now - checked_at < self.check_seconds and horizon == checked_horizon:
            return False
        self._checked[partition] = (now, horizon)
        return True


class Fold:
    """Applies partials records to the tables, in the order the comments explain."""

    def __init__(
        self,
        settings: Settings,
        weekly: MutableMapping[str, bytes],
        progress: MutableMapping[str, int],
        changes: PendingChanges,
        changelog_buffer: Callable[[], ChangelogBuffer],
    ) -> None:
        self.settings = settings
        self.weekly = weekly
        self.progress = progress
        self.changes = changes
        self._changelog_buffer = changelog_buffer
        self.retention = RetentionSchedule(settings.retention_check_seconds)
        #: the largest event time folded so far: retention counts back from it
        self.newest_ts_ms = 0

    async def fold(self, raw: bytes, partition: int) -> None:
        """Fold one record of partials partition ``partition``, then expire old weeks and
        wait while the changelog buffer is too long."""
        self.apply(decode_record(raw), partition)
        self.expire_old_weeks(partition)
        await self.changelog_backpressure()

    def apply(self, record: PartialsRecord, partition: int) -> None:
        """Add the record's partials to ``weekly`` and then its watermark to ``progress``."""
        applied = replayed = 0
        # Retention counts back from the newest event time, bounded by the clock (a skewed
        # producer must not expire anyone's weeks early).
        cap = watermark_cap(int(time.time() * 1000))
        for partial in record.partials:
            stored = self.weekly.get(partial.key)
            new = apply_partial(orjson.loads(stored) if stored else None, partial)
            if new is None:
                replayed += 1
                continue
            # orjson's result keeps a 4 KiB allocation even for a short value; an
            # exact-size copy is what the table should hold (10x less memory).
            self.weekly[partial.key] = memoryview(orjson.dumps(new)).tobytes()
            self.changes.days.setdefault(partial.key, set()).update(partial.days)
            self.newest_ts_ms = max(self.newest_ts_ms, min(partial.max_ts, cap))
            applied += 1
        if record.watermark_ms is not None:
            # After the record's partials: whatever X holds of p up to this event time
            # is folded once this is set.
            mark = progress_field(partition, record.source)
            if record.watermark_ms > (self.progress.get(mark) or 0):
                self.progress[mark] = record.watermark_ms
                self.changes.progress.add(mark)
        metrics.PARTIALS_APPLIED.inc(applied)
        metrics.PARTIALS_REPLAYED.inc(replayed)

    async def changelog_backpressure(self) -> None:
        """Wait while Faust's changelog buffer is long: it holds every value not yet sent.

        Faust only waits for it to shrink by 100 records between two records, and one
        partials record can set thousands of keys, so the buffer (and memory) would grow
        without bound while a backlog is folded.
        """
        buffer = self._changelog_buffer()
        while buffer.size > CHANGELOG_BUFFER_MAX:
            if not await buffer.flush_atmost(buffer.size - CHANGELOG_BUFFER_MAX):
                break  # nothing was sent for 0.1 s: let the commit's flush deal with it

    def expire_old_weeks(self, partition: int) -> None:
        """Tombstone this partition's keys of weeks past the retention horizon, when the
        :class:`RetentionSchedule` says the partition is due."""
        retention_weeks = self.settings.retention_weeks
        horizon = week_id(self.newest_ts_ms - retention_weeks * WEEK_MS)
        if not self.retention.claim(partition, time.monotonic(), horizon):
            return
        partitions = self.settings.partitions
        owned = [k for k in self.weekly if partition_for(k, partitions) == partition]
        doomed = expired_keys(owned, self.newest_ts_ms, retention_weeks)
        for key in doomed:
            del self.weekly[key]
        if doomed:
            log.info("partition %d: dropped %d keys older than the horizon", partition, len(doomed))
