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

import orjson
import redis.asyncio as aioredis

from aggregations.clock import bounded_event_time
from aggregations.totals import (
    COST,
    TOKENS,
    UNPRICED,
    TableValue,
    is_ranked,
    split_key,
    widen,
)
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
# Writes a batch of table values in one call: building each HSET and ZADD with redis-py's
# pipeline cost ~25 µs of Python per command, which capped a writer at ~8,000 keys/s. An item
# is [hash key, [field, value, ...], sorted set, score, member, [daily key, score, ...],
# daily member, spend board, cost]; every key name comes from RedisKeys in Python (an ACL
# key pattern still applies to each call). Numbers travel as strings: Lua numbers are
# doubles. An unranked member (the app of events without one, aggregations.totals.is_ranked)
# has "" for sorted set and spend board and no daily keys: only its hash is written. A
# member none of whose tokens had a price has "" for cost: it is on no spend board (its
# cost is unknown, not 0).
_WRITE_VALUES = """
local items = cjson.decode(ARGV[1])
for i = 1, #items do
  local item = items[i]
  redis.call('HSET', item[1], unpack(item[2]))
  if item[3] ~= '' then redis.call('ZADD', item[3], item[4], item[5]) end
  local daily = item[6]
  for j = 1, #daily, 2 do
    redis.call('ZADD', daily[j], daily[j + 1], item[7])
  end
  if item[8] ~= '' then
    if item[9] ~= '' then
      redis.call('ZADD', item[8], item[9], item[5])
    else
      redis.call('ZREM', item[8], item[5])
    end
  end
end
return #items
"""
MARKER_TTL_S = 3600
#: Values per script call: one call blocks Redis for ~10 ms at this size.
BATCH = 2000


class SnapshotWriter:
    """Pushes table values into the Redis key schema."""

    def __init__(self, client: aioredis.Redis, keys: RedisKeys, worker_id: str) -> None:
        self.client = client
        self.keys = keys
        self.worker_id = worker_id
        self._max_set = client.register_script(_MAX_SET)
        self._write_values = client.register_script(_WRITE_VALUES)
        self._week_starts: dict[str, str] = {}
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
        chunk: list[list[Any]] = []
        for key, value in items:
            chunk.append(
                self._command(key, value, None if changed_days is None else changed_days[key])
            )
            watermark = max(watermark, int(value.get("ts", 0)))
            written += 1
            if len(chunk) == BATCH:
                await self._write_values(args=[orjson.dumps(chunk)])
                chunk = []
        if chunk:
            await self._write_values(args=[orjson.dumps(chunk)])
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
            if changed_days is not None and watermark:
                # Incremental writes only: a full rewrite writes weeks long past as well.
                metrics.REDIS_LATENCY.observe(max(0.0, self.last_write_s - watermark / 1000))
        return written

    def _command(self, key: str, value: TableValue, only_days: Collection[str] | None) -> list[Any]:
        """One table value as the write script's item (see ``_WRITE_VALUES``)."""
        dimension, week, member = split_key(key)
        counts: list[int] = widen(value["c"])
        keys = self.keys
        fields = [
            "tokens", str(counts[0]), "prompt", str(counts[1]), "completion", str(counts[2]),
            "calls", str(counts[3]), "late", str(counts[4]),
            "cost_micro_usd", str(counts[COST]), "unpriced_tokens", str(counts[UNPRICED]),
        ]  # fmt: skip
        days: Mapping[str, list[int]] = value.get("d", {})
        if only_days is not None:
            days = {d: days[d] for d in only_days if d in days}
        daily: list[str] = []
        for day, day_counts in days.items():
            daily += (keys.daily(dimension, day), str(day_counts[TOKENS]))
        if dimension == "total":
            week_start = self._week_starts.get(week)
            if week_start is None:
                week_start = self._week_starts[week] = str(week_start_ms(week))
            return [keys.total(week), fields, keys.weeks, week_start, week, daily, member, "", ""]
        meta = value.get("m")
        if meta:
            fields += ("name", meta[0], "vendor", meta[1], "country", meta[2])
        if not is_ranked(dimension, member):
            return [
                keys.member(dimension, week, member), fields, "", fields[1], member, [], member,
                "", "",
            ]  # fmt: skip
        # On the spend board once some of its tokens had a price.
        priced = counts[TOKENS] > counts[UNPRICED]
        return [
            keys.member(dimension, week, member),
            fields,
            keys.leaderboard(dimension, week),
            fields[1],
            member,
            daily,
            member,
            keys.spend_board(dimension, week),
            str(counts[COST]) if priced else "",
        ]
