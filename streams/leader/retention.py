"""Retention: weeks older than the horizon (in event time) leave Redis and the ranker's state.

The pure half (which weeks expire, which keys a week has besides those matching its id) is
module-level; :class:`Retention` deletes them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis.asyncio as aioredis

from aggregations.ranker_state import week_tombstones
from aggregations.totals import RANKED_DIMENSIONS
from aggregations.weeks import WEEK_MS, days_of_week, week_end_ms, week_start_ms
from streams.leader.state_mirror import StateMirror
from streams.store.keys import RedisKeys

__all__ = ["Retention", "daily_keys", "expired_weeks", "week_pattern"]

log = logging.getLogger("tokenboard.ranker")


def expired_weeks(weeks: Iterable[str], watermark_ms: int, retention_weeks: int) -> list[str]:
    """The weeks of ``weeks`` that ended ``retention_weeks`` or more before the event-time
    watermark, oldest first."""
    horizon = watermark_ms - retention_weeks * WEEK_MS
    return sorted((w for w in set(weeks) if week_end_ms(w) <= horizon), key=week_start_ms)


def week_pattern(keys: RedisKeys, week: str) -> str:
    """The SCAN pattern of every key whose name holds the week's id."""
    return f"{keys.prefix}:*{week}*"


def daily_keys(keys: RedisKeys, week: str) -> list[str]:
    """The daily boards of the week's seven UTC days, for every ranked dimension."""
    return [
        keys.daily(dimension, day) for day in days_of_week(week) for dimension in RANKED_DIMENSIONS
    ]


class Retention:
    """Expires weeks past the retention horizon from Redis and from the ranker's state."""

    def __init__(
        self, client: aioredis.Redis, keys: RedisKeys, retention_weeks: int, mirror: StateMirror
    ) -> None:
        self.client = client
        self.keys = keys
        self.retention_weeks = retention_weeks
        self.mirror = mirror

    async def expire(self, watermark: int, weeks: list[str]) -> list[str]:
        """Delete weeks older than the retention horizon (event time) from Redis and from the
        ranker's state; returns the weeks kept."""
        if not watermark:
            return weeks
        # The state's own weeks too: one whose Redis data is already gone keeps its records.
        known = set(weeks) | self.mirror.state().weeks()
        doomed = expired_weeks(known, watermark, self.retention_weeks)
        for week in doomed:
            await self.delete_week(week)
        return [w for w in weeks if w not in doomed]

    async def delete_week(self, week: str) -> None:
        """Remove every key of one week, and its records of the ranker's state."""
        # The state topic first: if Redis fails next, the week is still listed and expired
        # again on the next tick, whereas records left behind would come back on every load.
        if self.mirror.held:
            await self.mirror.record(week_tombstones(week, RANKED_DIMENSIONS))
        pattern = week_pattern(self.keys, week)
        doomed = [k async for k in self.client.scan_iter(match=pattern, count=1000)]
        pipe = self.client.pipeline(transaction=False)
        if doomed:
            pipe.delete(*doomed)
        for key in daily_keys(self.keys, week):
            pipe.delete(key)
        pipe.zrem(self.keys.weeks, week)
        pipe.zrem(self.keys.closed_weeks, week)
        pipe.srem(self.keys.finalized, week)
        pipe.hdel(self.keys.ranked, week)
        await pipe.execute()
        log.info("expired %s from Redis (older than %d weeks)", week, self.retention_weeks)
