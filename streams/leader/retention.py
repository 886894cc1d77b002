"""Retention: weeks older than the horizon (in event time) leave Redis and the ranker's state.

The pure half (which weeks expire, which keys a week has besides those matching its id) is
module-level; :class:`Retention` deletes them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis.asyncio as aioredis

from aggregations.ranker_state import week_tombstones
from aggregations.totals import DIMENSIONS, RANKED_DIMENSIONS, UNRANKED_MEMBERS
from aggregations.weeks import WEEK_MS, days_of_week, week_end_ms, week_start_ms
from streams.leader.state_mirror import StateMirror
from streams.store.keys import RedisKeys

__all__ = ["Retention", "daily_keys", "expired_weeks", "member_patterns", "week_keys"]

log = logging.getLogger("tokenboard.ranker")

#: Keys per DEL command when a week leaves Redis.
DELETE_CHUNK = 1000


def expired_weeks(weeks: Iterable[str], watermark_ms: int, retention_weeks: int) -> list[str]:
    """The weeks of ``weeks`` that ended ``retention_weeks`` or more before the event-time
    watermark, oldest first."""
    horizon = watermark_ms - retention_weeks * WEEK_MS
    return sorted((w for w in set(weeks) if week_end_ms(w) <= horizon), key=week_start_ms)


def daily_keys(keys: RedisKeys, week: str) -> list[str]:
    """The daily boards of the week's seven UTC days, for every dimension and the total."""
    return [keys.daily(dimension, day) for day in days_of_week(week) for dimension in DIMENSIONS]


def week_keys(keys: RedisKeys, week: str) -> list[str]:
    """Every key of the week whose name is known without a scan.

    Exact names, never a pattern on the week id: a member may contain another week's id
    (a model named ``acme/m-2026-W20``), and its keys belong to their own week. The hashes
    of the unranked members (the app of events without one) are named too: they are on no
    board, although :func:`member_patterns` finds them as well.
    """
    per_dimension = [
        name
        for dimension in RANKED_DIMENSIONS
        for name in (
            keys.leaderboard(dimension, week),
            keys.spend_board(dimension, week),
            keys.published(dimension, week),
        )
    ]
    unranked = [keys.member(d, week, member) for d, member in UNRANKED_MEMBERS.items()]
    return [keys.total(week), *per_dimension, *unranked, *daily_keys(keys, week)]


def member_patterns(keys: RedisKeys, week: str) -> list[str]:
    """SCAN patterns of the week's member hashes: the week is a whole segment of the name
    (``tb:m:model:2026-W20:*``), so no key of another week matches."""
    return [_glob_escape(keys.member(dimension, week, "")) + "*" for dimension in RANKED_DIMENSIONS]


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis glob pattern (a prefix may hold ``*`` or ``[``)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


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
        doomed = week_keys(self.keys, week)
        for pattern in member_patterns(self.keys, week):
            doomed += [k async for k in self.client.scan_iter(match=pattern, count=1000)]
        pipe = self.client.pipeline(transaction=False)
        for chunk in range(0, len(doomed), DELETE_CHUNK):
            pipe.delete(*doomed[chunk : chunk + DELETE_CHUNK])
        pipe.zrem(self.keys.weeks, week)
        pipe.zrem(self.keys.closed_weeks, week)
        pipe.srem(self.keys.finalized, week)
        pipe.hdel(self.keys.ranked, week)
        await pipe.execute()
        log.info("expired %s from Redis (older than %d weeks)", week, self.retention_weeks)
