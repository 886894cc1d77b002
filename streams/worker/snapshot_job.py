"""The snapshot job: every worker writes the table keys of the partitions it owns to Redis.

It runs on a timer. Between two runs it writes only what the fold changed; a full rewrite of
everything the worker owns follows each rebalance (even one that gave back the same
partitions) and each loss of Redis's
state (this worker's marker key is gone), so snapshots come back without reprocessing any
topic. The Redis side is :class:`streams.worker.snapshots.SnapshotWriter`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable, Iterator, Mapping

import faust
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from aggregations.partials import partition_for
from aggregations.progress import parse_progress_field
from aggregations.totals import TableValue
from streams import metrics
from streams.settings import Settings
from streams.store.keys import RedisKeys
from streams.worker.fold import PendingChanges
from streams.worker.jobs import run_guarded
from streams.worker.snapshots import SnapshotWriter

log = logging.getLogger("tokenboard.worker")


def owned_progress(
    marks: Iterable[str], owned: Collection[int], progress: Mapping[str, int]
) -> dict[str, int]:
    """The progress fields (``"X:p"`` -> watermark ms) among ``marks`` whose partials
    partition X is in ``owned``, with their current values (fields without one are left out)."""
    return {
        mark: ms
        for mark in marks
        if parse_progress_field(mark)[0] in owned and (ms := progress.get(mark)) is not None
    }


def owned_values(
    candidates: Iterable[str],
    owned: Collection[int],
    partitions: int,
    weekly: Mapping[str, bytes],
) -> Iterator[tuple[str, TableValue]]:
    """The decoded values of the ``candidates`` keys that live in an ``owned`` partition and
    are still in ``weekly``, decoded one at a time as they are consumed.

    The memory store keeps keys of partitions that moved to another worker; writing those
    stale values would overwrite the new owner's snapshot.
    """
    for key in candidates:
        if partition_for(key, partitions) in owned and (value := weekly.get(key)) is not None:
            yield key, orjson.loads(value)


class SnapshotJob:
    """Writes this worker's table keys to Redis, by difference or in full."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        weekly: Mapping[str, bytes],
        progress: Mapping[str, int],
        changes: PendingChanges,
        redis_client: aioredis.Redis,
        keys: RedisKeys,
        worker_id: str,
    ) -> None:
        self.app = app
        self.settings = settings
        self.weekly = weekly
        self.progress = progress
        self.changes = changes
        self.redis = redis_client
        self.keys = keys
        self.writer = SnapshotWriter(redis_client, keys, worker_id)
        self._created_s = time.time()
        # Read when /metrics is served: a job that cannot write (Redis down, a rebalance that
        # does not end) must not leave the last value frozen.
        metrics.SNAPSHOT_AGE.set_function(self.snapshot_age)
        #: the partials partitions and the consumer generation of the last full rewrite;
        #: another set or another generation forces a new one
        self._seen_assignment: set[int] = set()
        self._seen_generation: int | None = None

    def snapshot_age(self) -> float:
        """Seconds since this worker last wrote a key to Redis (or since it started, before
        its first write): ``tokenboard_snapshot_age_seconds``."""
        return time.time() - (self.writer.last_write_s or self._created_s)

    def owned_partitions(self) -> set[int]:
        """The partials partitions assigned to this worker now."""
        app = self.app
        assignment = app.consumer.assignment() if app.consumer else set()
        return {tp.partition for tp in assignment if tp.topic == self.settings.partials_topic}

    async def tick(self) -> None:
        """The timer's job: one snapshot, unless a rebalance or a table recovery is on."""
        if self.app.rebalancing or self.app.in_recovery:
            return  # a full rewrite follows once the recovered table is complete
        await run_guarded("snapshot", self._write_or_skip)

    async def _write_or_skip(self) -> None:
        try:
            await self.write()
        except RedisError as exc:
            # Redis down or restarting: keep counting; the marker check rewrites everything
            # once it is back (a restarted-empty Redis has no marker).
            log.warning("snapshot skipped, Redis unavailable: %r", exc)
            self._seen_assignment.clear()
        except Exception:
            # The changes taken for this write may not all be in Redis: rewrite everything
            # next time. The guard around this logs and counts the error.
            self._seen_assignment.clear()
            raise

    async def write(self) -> None:
        """Write what changed since the last write, or everything owned when a full rewrite
        is due; then, after a full rewrite, mark this worker's snapshot complete."""
        owned = self.owned_partitions()
        # Every rebalance, not only a different set: a worker that lost its partitions (a
        # stall past the session timeout) and got the same ones back recovered newer values
        # than it wrote, and the recovered keys are not among the changes.
        generation = self.app.consumer_generation_id
        full = (
            owned != self._seen_assignment
            or generation != self._seen_generation
            or await self.writer.needs_full_rewrite()
        )
        dirty = self.changes.days
        self.changes.days = {}
        # The progress is taken now, before any value is read, and written after them: the
        # values read later are at least as new, so Redis never shows a partition's progress
        # ahead of its data (the ranker closes weeks on it).
        marks = list(self.progress.keys()) if full else self.changes.progress
        self.changes.progress = set()
        progress = owned_progress(marks, owned, self.progress)
        candidates = list(self.weekly.keys()) if full else list(dirty)
        # A generator: a full rewrite of a large table must not decode it all at once.
        mine = owned_values(candidates, owned, self.settings.partitions, self.weekly)
        await self.writer.write(mine, changed_days=None if full else dirty, progress=progress)
        if full:
            self._seen_assignment = set(owned)
            self._seen_generation = generation
            await self.writer.mark_complete()
            if owned:
                # After Redis lost its state the ranker waits until every partition is back.
                await self.redis.sadd(self.keys.snapshot_partitions, *sorted(owned))
