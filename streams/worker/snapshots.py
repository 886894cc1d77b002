"""Writes table values to Redis as absolute values (safe to replay), in pipelined batches.

Every worker writes the keys of the table partitions it owns; since each table key lives in
exactly one partition, no two workers ever write the same member. A full rewrite happens
when the worker's marker key is missing (Redis restarted empty, or FLUSHALL) and after
every rebalance, so snapshots come back without reprocessing any topic.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis

from aggregations.clock import bounded_event_time
from aggregations.totals import COUNT_FIELDS, TOKENS, TableValue, split_key
from aggregations.weeks import week_start_ms
from streams import metrics
from streams.store.keys import RedisKeys

# Redis has no "set if greater" for strings; the watermark only ever moves forward.
_MAX_SET = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local candidate = tonumber(ARGV[1])
if candidate > current then redis.call('SET', KEYS[1], ARGV[1]) return 1 end
return 0
"""
MARKER_TTL_S = 3600
BATCH = 2000


class SnapshotWriter:
    """Pushes table values into the Redis key schema."""

    def __init__(self, client: aioredis.Redis, keys: RedisKeys, worker_id: str) -> None:
        self.client = client
        self.keys = keys
        self.worker_id = worker_id
        self._max_set = client.register_script(_MAX_SET)
        self.last_write_s = 0.0

    async def needs_full_rewrite(self) -> bool:
        """True when this worker's marker is gone (Redis flushed or restarted empty)."""
        return not await self.client.exists(self.keys.writer_marker(self.worker_id))

    async def mark_complete(self) -> None:
        """Record that everything this worker owns is in Redis."""
        await self.client.set(
            self.keys.writer_marker(self.worker_id), int(time.time()), ex=MARKER_TTL_S
        )

    async def write(
        self,
        items: Iterable[tuple[str, TableValue]],
        changed_days: Mapping[str, Collection[str]] | None = None,
        progress: Mapping[str, int] | None = None,
    ) -> int:
        """Write table values; returns how many keys were written.

        With ``changed_days`` only those daily buckets of a key are rewritten (the weekly
        values always are); without it every bucket is (a full rewrite). ``progress``
        (``"X:p"`` -> source watermark ms, see aggregations/progress.py) goes to the
        progress hash after every value, in the last pipeline: it must never be in Redis
        before the data it vouches for. The caller takes it before reading the values.
        """
        written = 0
        watermark = 0
        pipe = self.client.pipeline(transaction=False)
        for key, value in items:
            self._queue(pipe, key, value, None if changed_days is None else changed_days[key])
            watermark = max(watermark, int(value.get("ts", 0)))
            written += 1
            if written % BATCH == 0:
                await pipe.execute()
                pipe = self.client.pipeline(transaction=False)
        if written:
            now_ms = int(time.time() * 1000)
            pipe.set(self.keys.snapshot_at, now_ms)
        if progress:
            # Plain HSET, not max-only: after a rebalance the new owner's recovered progress
            # may be behind what the old owner wrote, and so may the data it rewrites.
            fields: dict[Any, Any] = dict(progress)  # redis-py's Mapping key is invariant
            pipe.hset(self.keys.progress, mapping=fields)
        if written or progress:
            await pipe.execute()
        if written:
            if watermark:
                # Bounded by the clock: one event from a skewed clock must not move the
                # current week for everyone (aggregations/clock.py).
                watermark = bounded_event_time(watermark, int(time.time() * 1000))
                await self._max_set(keys=[self.keys.watermark], args=[watermark])
            metrics.SNAPSHOT_KEYS.inc(written)
            self.last_write_s = time.time()
        return written

    def _queue(
        self, pipe: Any, key: str, value: TableValue, only_days: Collection[str] | None
    ) -> None:
        dimension, week, member = split_key(key)
        counts: list[int] = value["c"]
        fields: dict[str, Any] = dict(zip(COUNT_FIELDS, counts, strict=True))
        days: Mapping[str, list[int]] = value.get("d", {})
        if only_days is not None:
            days = {d: days[d] for d in only_days if d in days}
        if dimension == "total":
            pipe.hset(self.keys.total(week), mapping=fields)
            pipe.zadd(self.keys.weeks, {week: week_start_ms(week)})
            for day, day_counts in days.items():
                pipe.zadd(self.keys.daily("total", day), {member: day_counts[TOKENS]})
            return
        meta = value.get("m")
        if meta:
            fields.update(name=meta[0], vendor=meta[1], country=meta[2])
        pipe.zadd(self.keys.leaderboard(dimension, week), {member: counts[TOKENS]})
        pipe.hset(self.keys.member(dimension, week, member), mapping=fields)
        for day, day_counts in days.items():
            pipe.zadd(self.keys.daily(dimension, day), {member: day_counts[TOKENS]})
