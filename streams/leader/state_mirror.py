"""The ranker's state in memory and its mirror in Redis, with the marker that vouches for it.

The state topic (:mod:`streams.leader.state_log`) is the truth. :class:`StateMirror` reads it
whenever memory or Redis may be stale, writes every new fact there before relying on it, and
mirrors the state into Redis (``weeks:closed``, ``finalized``, ``published:*``,
``late:alerted``) under a marker naming its load of the topic and the mirror's version. A
missing marker means Redis lost its state; the ranker then waits until every partition's
snapshot was rewritten. The pure half (marker, mirror commands) is module-level.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from aggregations.ranker_state import (
    CLOSED,
    FINALIZED,
    LATE,
    RankerState,
    Record,
    closed_record,
    decode_top,
    encode_top,
    finalized_record,
    late_record,
    parse_key,
    published_record,
)
from aggregations.weeks import week_start_ms
from streams.leader.state_log import RankerStateLog
from streams.store.keys import RedisKeys

__all__ = [
    "WAIT_LOG_S",
    "Command",
    "MirrorMarker",
    "RedisStateLost",
    "StateMirror",
    "mirror_command",
]

log = logging.getLogger("tokenboard.ranker")

WAIT_LOG_S = 30.0

#: One Redis command with its arguments, as queued on a pipeline.
Command = tuple[str | int | bytes, ...]


class RedisStateLost(Exception):
    """Redis lost its state during a tick: what the tick read may be part of a rewrite."""


@dataclass
class MirrorMarker:
    """Which load of the state topic Redis mirrors (``token``) and how many writes of it
    were made since (``version``); its :attr:`value` is kept in ``ranker:mirror``."""

    token: str = ""
    version: int = 0

    @property
    def value(self) -> str:
        """The marker's Redis value."""
        return f"{self.token}:{self.version}"

    def renew(self) -> None:
        """A new load of the state topic: a fresh token, version 0."""
        self.token = uuid.uuid4().hex
        self.version = 0

    def bump(self) -> None:
        """One more mirror write of the same load."""
        self.version += 1


def mirror_command(keys: RedisKeys, state: RankerState, key: str) -> Command:
    """The Redis write that makes one record's key show what ``state`` holds.

    ``ValueError`` for a key that is not a ranker-state key.
    """
    kind, dimension, week = parse_key(key)
    if kind == CLOSED:
        if week in state.closed:
            return ("ZADD", keys.closed_weeks, week_start_ms(week), week)
        return ("ZREM", keys.closed_weeks, week)
    if kind == FINALIZED:
        if week in state.finalized:
            return ("SADD", keys.finalized, week)
        return ("SREM", keys.finalized, week)
    if kind == LATE:
        if week in state.late:
            late, tokens = state.late[week]
            return ("HSET", keys.late_alerted, week, late, f"{week}:tokens", tokens)
        return ("HDEL", keys.late_alerted, week, f"{week}:tokens")
    assert dimension is not None
    top = state.published.get((dimension, week))
    if top is None:
        return ("DEL", keys.published(dimension, week))
    return ("SET", keys.published(dimension, week), encode_top(top))


class StateMirror:
    """The ranker's durable state: held in memory, written to the state topic, mirrored in
    Redis; knows whether Redis can be trusted."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: RedisKeys,
        state_log: RankerStateLog,
        partitions: int,
    ) -> None:
        self.client = client
        self.keys = keys
        self.state_log = state_log
        self.partitions = partitions
        # None until read from the state topic: the first tick as leader reads it.
        self._state: RankerState | None = None
        self.marker = MirrorMarker()
        self._awaiting_rewrite = False
        self._waiting_logged = 0.0

    @property
    def held(self) -> bool:
        """True once the state was read from the topic (and not forgotten since)."""
        return self._state is not None

    def forget(self) -> None:
        """Drop the in-memory state: the next :meth:`sync` reads it back from the topic."""
        self._state = None

    def state(self) -> RankerState:
        """The state in memory; the same object until the next :meth:`sync` reloads it."""
        if self._state is None:
            raise RuntimeError("the ranker state is read by StateMirror.sync() before it is used")
        return self._state

    async def sync(self) -> bool:
        """Read the state topic and mirror it into Redis when memory or Redis may be stale.

        Returns False while the ranker must not act: after Redis lost its state, until every
        partition's snapshot was rewritten (a partial view would give changes nobody made).
        """
        marker = await self.client.get(self.keys.ranker_marker)
        if self._state is None or marker is None or marker != self.marker.value:
            # Not our last mirror: we just became leader, another leader wrote since, Redis
            # lost its state, or one of our mirror writes failed. The topic is the truth.
            state = await self.state_log.load()
            if state is None:
                state = await self._adopt_redis_state()
            if marker is None and not self._awaiting_rewrite:
                self._awaiting_rewrite = True
                if state.records():
                    log.warning("Redis lost the ranker's state: restored from the state topic")
            self._state = state
            self.marker.renew()
            await self._mirror_all(create=marker is None)
        if self._awaiting_rewrite:
            if not await self._snapshots_rewritten():
                now = time.monotonic()
                if now - self._waiting_logged >= WAIT_LOG_S:
                    self._waiting_logged = now
                    log.info("ranker waits for every partition's snapshot to be rewritten")
                return False
            self._awaiting_rewrite = False
            self._waiting_logged = 0.0
            # A tick under way when Redis lost its state may have ranked part of the rewrite
            # and recorded that data's fingerprint: rank every week again from complete data.
            await self.client.delete(self.keys.ranked)
            log.info("every partition's snapshot rewritten: the ranker resumes")
        return True

    async def check_trusted(self) -> None:
        """Raise :class:`RedisStateLost` unless Redis still holds our mirror's marker.

        Called after reading what is about to be published from: a flush deletes the marker
        and only :meth:`sync` creates it again, so a marker still there means the reads
        came before any flush since the tick began.
        """
        marker = await self.client.get(self.keys.ranker_marker)
        if marker is None or marker != self.marker.value:
            raise RedisStateLost

    async def record(self, records: list[Record]) -> None:
        """Make ``records`` durable, then true in memory, then visible in Redis.

        In that order: a fact is relied on only once the state topic has it, and if the
        mirror write fails, the marker's version tells the next tick to mirror everything.
        """
        state = self.state()
        await self.state_log.put(records)
        state.apply_all(records)
        self.marker.bump()
        pipe = self.client.pipeline(transaction=True)
        self._queue_mirror(pipe, state, (key for key, _ in records))
        # Only if still there: a marker created here would hide a flush from the next tick.
        pipe.set(self.keys.ranker_marker, self.marker.value, xx=True)
        await pipe.execute()

    async def _snapshots_rewritten(self) -> bool:
        members = await self.client.smembers(self.keys.snapshot_partitions)
        rewritten = set(members)
        return all(str(p) in rewritten for p in range(self.partitions))

    async def _adopt_redis_state(self) -> RankerState:
        """The state Redis holds, written to the (never written) state topic.

        Versions before the state topic kept this state in Redis only: adopting it once
        keeps an upgrade from closing every week again.
        """
        # The client answers str (decode_responses).
        closed = cast(list[str], await self.client.zrange(self.keys.closed_weeks, 0, -1))
        finalized = cast(set[str], await self.client.smembers(self.keys.finalized))
        alerted = cast(dict[str, str], await self.client.hgetall(self.keys.late_alerted))
        late = {k: int(v) for k, v in alerted.items()}
        records: list[Record] = [closed_record(w) for w in closed]
        records += [finalized_record(w) for w in finalized]
        records += [
            late_record(week, count, late.get(f"{week}:tokens", 0))
            for week, count in late.items()
            if ":" not in week
        ]
        async for key in self.client.scan_iter(match=self.keys.published("*", "*"), count=1000):
            raw = await self.client.get(key)
            _, dimension, week = key.rsplit(":", 2)
            if raw:
                records.append(published_record(dimension, week, decode_top(raw)))
        await self.state_log.put(records)
        if records:
            log.info("ranker state adopted from Redis: %d records", len(records))
        return RankerState.from_records(records)

    async def _mirror_all(self, create: bool) -> None:
        """Replace every ranker-state key of Redis with the state's content, atomically.

        The marker is created only when its absence was noticed (``create``); otherwise
        only updated, so that a flush since then is still noticed by the next tick.
        """
        state = self.state()
        stale = [
            key
            async for key in self.client.scan_iter(match=self.keys.published("*", "*"), count=1000)
        ]
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.keys.closed_weeks, self.keys.finalized, self.keys.late_alerted, *stale)
        self._queue_mirror(pipe, state, (key for key, _ in state.records()))
        pipe.set(self.keys.ranker_marker, self.marker.value, xx=not create)
        await pipe.execute()

    def _queue_mirror(self, pipe: Pipeline, state: RankerState, keys: Iterable[str]) -> None:
        """Queue the Redis writes that make each record key of ``keys`` show ``state``."""
        for key in keys:
            pipe.execute_command(*mirror_command(self.keys, state, key))
