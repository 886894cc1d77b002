"""The ids each target was sent, kept in Redis so that a restart never sends one again.

One sorted set per target, ``{prefix}:notify:delivered:{target}``: member the event id, score
the wall time (ms) of its delivery. Why Redis rather than a compacted Kafka topic: every
process already has it, a membership test is one round trip with nothing to load at start,
and trimming by score bounds the set without tombstones. Entries older than
``remember_days`` (35 by default, past the topics' 30-day retention, so a record that can
still be read again is still known) are trimmed as new ones are added, and the whole key
expires when a target stops receiving anything (a target removed from the config).

Kafka offsets remain the first line: a restarted ``notify`` resumes after the last record
it finished. The ledger catches what offsets cannot: a record read again after a crash
between delivery and commit, and an event the publisher sent again under the same id.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis

__all__ = ["DeliveredLedger"]

DAY_S = 86_400


class DeliveredLedger:
    """Delivered event ids per target (shared by every lane of a process)."""

    def __init__(self, client: aioredis.Redis, prefix: str, remember_days: float) -> None:
        self.client = client
        self.prefix = prefix
        self.remember_s = int(remember_days * DAY_S)

    def key(self, target: str) -> str:
        """The sorted set of ``target``'s delivered ids."""
        return f"{self.prefix}:notify:delivered:{target}"

    async def delivered(self, target: str, event_id: str) -> bool:
        """Whether ``target`` was already sent ``event_id``."""
        return await self.client.zscore(self.key(target), event_id) is not None

    async def record(self, target: str, event_id: str) -> None:
        """Remember that ``target`` was sent ``event_id``; forget entries past the horizon."""
        now_ms = time.time_ns() // 1_000_000
        key = self.key(target)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {event_id: now_ms})
            pipe.zremrangebyscore(key, "-inf", now_ms - self.remember_s * 1000)
            pipe.expire(key, self.remember_s)
            await pipe.execute()

    async def forget(self, target: str) -> None:
        """Drop every id of ``target`` (tests, or to send a target everything again)."""
        await self.client.delete(self.key(target))
