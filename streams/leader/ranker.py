"""The leader's periodic job: ranks, week closing, ranking changes, alerts, retention.

It works on Redis, where the snapshot writers of all workers merge their partitions into one
view. Everything it publishes carries a deterministic id. What it published (closed and
finalized weeks, the top N lists live changes are computed from, the late counts alerted) is
its own state: it is kept in memory, written to the compacted ranker-state topic before
anything relies on it, and mirrored into Redis for the readers. A new leader reads the topic
to its end before its first decision, and so does the ranker when the mirror's marker is
gone (Redis flushed or restarted empty); it then also waits until every partition's snapshot
was rewritten. Neither a restart nor a Redis loss makes it publish a fact again, least of
all under a new id.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis

from aggregations.alerts import late_correction_alert, week_alerts
from aggregations.growth import growth_streak, wow_pct
from aggregations.progress import closing_watermark
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
    week_tombstones,
)
from aggregations.rankings import Ranked, rank, rank_changes, rank_of
from aggregations.totals import RANKED_DIMENSIONS
from aggregations.weeks import WEEK_MS, previous_week, week_end_ms, week_id, week_start_ms
from streams.leader.state_log import RankerStateLog
from streams.settings import Settings
from streams.store.keys import RedisKeys
from streams.store.state import read_history, read_state

log = logging.getLogger("tokenboard.ranker")

Publish = Callable[[str, dict[str, Any]], Awaitable[None]]
RANK_REFRESH_S = 5.0
SETTLE_MS = 3000
PIPELINE_CHUNK = 5000
WAIT_LOG_S = 30.0


class RedisStateLost(Exception):
    """Redis lost its state during a tick: what the tick read may be part of a rewrite."""


class Ranker:
    """Turns the merged Redis view into ranks, closed weeks, change events and alerts."""

    def __init__(
        self,
        settings: Settings,
        client: aioredis.Redis,
        keys: RedisKeys,
        publish: Publish,
        state_log: RankerStateLog,
    ) -> None:
        self.settings = settings
        self.client = client
        self.keys = keys
        self.publish = publish
        self.state_log = state_log
        self._ranked_at: dict[str, float] = {}
        self._totals_seen: dict[str, tuple[Any, int]] = {}
        # None until read from the state topic: the first tick as leader reads it.
        self._state: RankerState | None = None
        self._mirror_token = ""
        self._mirror_version = 0
        self._awaiting_rewrite = False
        self._waiting_logged = 0.0

    def forget(self) -> None:
        """Drop the in-memory state: the next tick reads it back from the state topic.

        Called after every rebalance, since leadership only moves then and another leader
        may have published in the meantime.
        """
        self._state = None

    async def tick(self, now_ms: int | None = None) -> None:
        """One pass; cheap when nothing changed."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if not await self._sync():
            return
        try:
            await self._pass(now)
        except RedisStateLost:
            # The next tick restores the mirror and waits for the snapshots' rewrite.
            log.warning("Redis lost its state during a ranker tick: nothing published")

    async def _pass(self, now: int) -> None:
        memory = self._loaded()
        state = await read_state(self.client, self.keys)
        watermark = state.watermark_ms
        # Before anything else: a week past the horizon must not be closed (again) because
        # a snapshot rewrite brought its data back for a moment.
        weeks = await self._expire(watermark, state.weeks)
        if not weeks:
            return
        current = week_id(watermark) if watermark else weeks[-1]
        await self.client.set(self.keys.current_week, current)
        changed_at = int(await self.client.get(self.keys.snapshot_at) or 0)
        closing = await self._closing_watermark(watermark)
        grace = self.settings.grace_seconds * 1000
        idle = self.settings.idle_close_seconds * 1000

        totals = await self._totals()
        for week in weeks:
            await self._write_ranks(week, totals)
        for week in weeks:
            if week in memory.closed:
                continue
            end = week_end_ms(week) + grace
            # Event time: the slowest partition's progress. Wall clock: partitions that went
            # idle (no snapshot changed anything for `idle`) hold nothing back.
            if closing >= end or (now >= end and now - changed_at >= idle):
                if await self._settled(week, now):
                    await self._close(week)
            else:
                await self._publish_live(week)
        for week in sorted(memory.closed):
            await self._late_corrections(week)

    async def _closing_watermark(self, watermark: int) -> int:
        """The event time up to which Redis holds every partition's data.

        The minimum over the progress hash's (partials partition, source) pairs, written by
        the snapshot writers after the data they vouch for; ``watermark`` (the fastest
        partition's event time) only when the hash is empty, i.e. writers of a version
        without it. After Redis lost its state the ranker waits for every partition's
        rewrite (:meth:`_sync`), which brings the hash back, before it gets here.
        """
        raw = await self.client.hgetall(self.keys.progress)
        progress = {field: int(ms) for field, ms in raw.items()}
        closing = closing_watermark(progress, range(self.settings.partitions))
        return watermark if closing is None else closing

    # Durable state ------------------------------------------------------------------
    def _loaded(self) -> RankerState:
        if self._state is None:
            raise RuntimeError("the ranker state is read by _sync() before it is used")
        return self._state

    def _marker(self) -> str:
        return f"{self._mirror_token}:{self._mirror_version}"

    async def _sync(self) -> bool:
        """Read the state topic and mirror it into Redis when memory or Redis may be stale.

        Returns False while the ranker must not act: after Redis lost its state, until every
        partition's snapshot was rewritten (a partial view would give changes nobody made).
        """
        marker = await self.client.get(self.keys.ranker_marker)
        if self._state is None or marker is None or marker != self._marker():
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
            self._mirror_token = uuid.uuid4().hex
            self._mirror_version = 0
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

    async def _check_trusted(self) -> None:
        """Raise :class:`RedisStateLost` unless Redis still holds our mirror's marker.

        Called after reading what is about to be published from: a flush deletes the marker
        and only :meth:`_sync` creates it again, so a marker still there means the reads
        came before any flush since the tick began.
        """
        marker = await self.client.get(self.keys.ranker_marker)
        if marker is None or marker != self._marker():
            raise RedisStateLost

    async def _snapshots_rewritten(self) -> bool:
        members = await self.client.smembers(self.keys.snapshot_partitions)
        rewritten = set(members)
        return all(str(p) in rewritten for p in range(self.settings.partitions))

    async def _adopt_redis_state(self) -> RankerState:
        """The state Redis holds, written to the (never written) state topic.

        Versions before the state topic kept this state in Redis only: adopting it once
        keeps an upgrade from closing every week again.
        """
        closed = await self.client.zrange(self.keys.closed_weeks, 0, -1)
        finalized = await self.client.smembers(self.keys.finalized)
        late = {k: int(v) for k, v in (await self.client.hgetall(self.keys.late_alerted)).items()}
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

    async def _record(self, records: list[Record]) -> None:
        """Make ``records`` durable, then true in memory, then visible in Redis.

        In that order: a fact is relied on only once the state topic has it, and if the
        mirror write fails, the marker's version tells the next tick to mirror everything.
        """
        state = self._loaded()
        await self.state_log.put(records)
        state.apply_all(records)
        self._mirror_version += 1
        pipe = self.client.pipeline(transaction=True)
        for key, _ in records:
            self._queue_mirror(pipe, state, key)
        # Only if still there: a marker created here would hide a flush from the next tick.
        pipe.set(self.keys.ranker_marker, self._marker(), xx=True)
        await pipe.execute()

    async def _mirror_all(self, create: bool) -> None:
        """Replace every ranker-state key of Redis with the state's content, atomically.

        The marker is created only when its absence was noticed (``create``); otherwise
        only updated, so that a flush since then is still noticed by the next tick.
        """
        state = self._loaded()
        stale = [
            key
            async for key in self.client.scan_iter(match=self.keys.published("*", "*"), count=1000)
        ]
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.keys.closed_weeks, self.keys.finalized, self.keys.late_alerted, *stale)
        for key, _ in state.records():
            self._queue_mirror(pipe, state, key)
        pipe.set(self.keys.ranker_marker, self._marker(), xx=not create)
        await pipe.execute()

    def _queue_mirror(self, pipe: Any, state: RankerState, key: str) -> None:
        """Queue the Redis writes that make one record's key show what ``state`` holds."""
        kind, dimension, week = parse_key(key)
        if kind == CLOSED:
            if week in state.closed:
                pipe.zadd(self.keys.closed_weeks, {week: week_start_ms(week)})
            else:
                pipe.zrem(self.keys.closed_weeks, week)
        elif kind == FINALIZED:
            if week in state.finalized:
                pipe.sadd(self.keys.finalized, week)
            else:
                pipe.srem(self.keys.finalized, week)
        elif kind == LATE:
            if week in state.late:
                late, tokens = state.late[week]
                pipe.hset(self.keys.late_alerted, mapping={week: late, f"{week}:tokens": tokens})
            else:
                pipe.hdel(self.keys.late_alerted, week, f"{week}:tokens")
        else:
            assert dimension is not None
            top = state.published.get((dimension, week))
            if top is None:
                pipe.delete(self.keys.published(dimension, week))
            else:
                pipe.set(self.keys.published(dimension, week), encode_top(top))

    async def _settled(self, week: str, now_ms: int) -> bool:
        """True once the week's total stopped changing for SETTLE_MS.

        A second guard next to the closing watermark: the idle rule closes on the wall
        clock, and a week's final rankings must not be computed while a rewrite (or a
        partition the progress does not cover) is still adding to it.
        """
        tokens = await self.client.hget(self.keys.total(week), "tokens")
        seen = self._totals_seen.get(week)
        if seen is None or seen[0] != tokens:
            self._totals_seen[week] = (tokens, now_ms)
            return False
        return now_ms - seen[1] >= SETTLE_MS

    # Ranks --------------------------------------------------------------------------
    async def _ranking(self, dimension: str, week: str) -> list[Ranked]:
        rows = await self.client.zrange(
            self.keys.leaderboard(dimension, week), 0, -1, withscores=True
        )
        return rank({m: int(s) for m, s in rows})

    async def _write_ranks(self, week: str, totals: dict[str, int]) -> None:
        """Rank, previous rank and WoW of every member, when the week's data changed."""
        prev = previous_week(week)
        pipe = self.client.pipeline(transaction=False)
        for dimension in RANKED_DIMENSIONS:
            pipe.zcard(self.keys.leaderboard(dimension, week))
        pipe.hget(self.keys.ranked, week)
        *cards, seen = await pipe.execute()
        # The growth streak reads every earlier week's total, WoW the previous week's.
        earlier = [[w, t] for w, t in sorted(totals.items()) if w <= week]
        fingerprint = hashlib.sha1(orjson.dumps([cards, earlier])).hexdigest()
        if seen is not None and seen == fingerprint:
            return
        # While a week keeps changing (a backfill), rewriting every member's rank each second
        # costs more than the freshness is worth: at most once per RANK_REFRESH_S.
        now = time.monotonic()
        if seen is not None and now - self._ranked_at.get(week, 0.0) < RANK_REFRESH_S:
            return
        self._ranked_at[week] = now
        complete = True
        write = self.client.pipeline(transaction=False)
        for dimension in RANKED_DIMENSIONS:
            rows = await self._ranking(dimension, week)
            previous = await self._ranking(dimension, prev)
            complete = (
                complete
                and _adds_up(rows, totals.get(week))
                and _adds_up(previous, totals.get(prev))
            )
            before = {r.member: r for r in previous}
            for i, row in enumerate(rows):
                if i and i % PIPELINE_CHUNK == 0:
                    await write.execute()  # bounded memory with tens of thousands of members
                old = before.get(row.member)
                pct = wow_pct(row.tokens, old.tokens if old else None)
                write.hset(
                    self.keys.member(dimension, week, row.member),
                    mapping={
                        "rank": row.rank,
                        "prev_rank": old.rank if old else "",
                        "prev_tokens": old.tokens if old else "",
                        "wow_pct": "" if pct is None else round(pct, 4),
                    },
                )
        total = totals.get(week, 0)
        previous_total = totals.get(prev)
        pct = wow_pct(total, previous_total)
        write.hset(
            self.keys.total(week),
            mapping={
                "growth_streak": growth_streak(totals, week),
                "prev_tokens": "" if previous_total is None else previous_total,
                "wow_pct": "" if pct is None else round(pct, 4),
            },
        )
        # Boards that do not add up to their total are still being written (the writers of
        # other partitions, or a rewrite after Redis lost its state): the fingerprint may
        # already be final, so it is recorded only for complete data, and the ranks are
        # computed again (at most every RANK_REFRESH_S) until then.
        write.hset(self.keys.ranked, week, fingerprint if complete else "")
        await write.execute()

    async def _totals(self) -> dict[str, int]:
        weeks = list(await self.client.zrange(self.keys.weeks, 0, -1))
        pipe = self.client.pipeline(transaction=False)
        for week in weeks:
            pipe.hget(self.keys.total(week), "tokens")
        values = await pipe.execute()
        return {w: int(v) for w, v in zip(weeks, values, strict=True) if v is not None}

    # Ranking changes -----------------------------------------------------------------
    async def _publish_live(self, week: str) -> None:
        top_n = self.settings.top_n
        published = self._loaded().published
        for dimension in RANKED_DIMENSIONS:
            current = (await self._ranking(dimension, week))[:top_n]
            before = published.get((dimension, week), [])
            if rank_of(before) == rank_of(current):
                continue
            # The same move can happen twice in a week (ranks go back and forth); the
            # published list it starts from tells the two apart, and is itself deterministic.
            basis = hashlib.sha1(orjson.dumps([[r.member, r.rank] for r in before])).hexdigest()
            await self._check_trusted()
            for event in rank_changes(dimension, week, before, current, top_n, "live"):
                event["id"] = hashlib.sha1(f"{event['id']}|{basis}".encode()).hexdigest()
                await self.publish(self.settings.rankings_topic, event)
            await self._record([published_record(dimension, week, current)])

    async def _close(self, week: str) -> None:
        """Publish the week's final ranking changes and alerts, once, then mark it closed."""
        records: list[Record] = []
        if week not in self._loaded().finalized:
            top_n = self.settings.top_n
            prev = previous_week(week)
            events: list[tuple[str, dict[str, Any]]] = []
            for dimension in RANKED_DIMENSIONS:
                final = (await self._ranking(dimension, week))[:top_n]
                before = (await self._ranking(dimension, prev))[:top_n]
                for event in rank_changes(dimension, week, before, final, top_n, "final"):
                    events.append((self.settings.rankings_topic, event))
                records.append(published_record(dimension, week, final))
            history, meta = await read_history(self.client, self.keys, week)
            for alert in week_alerts(
                week, history, meta, top_n=top_n, surge_pct=self.settings.surge_pct
            ):
                events.append((self.settings.alerts_topic, alert))
            totals = await self.client.hmget(self.keys.total(week), ["late", "tokens"])
            records.append(late_record(week, int(totals[0] or 0), int(totals[1] or 0)))
            records.append(finalized_record(week))
            await self._check_trusted()
            for topic, event in events:
                await self.publish(topic, event)
        # After everything it stands for: a crash before it publishes the same ids again.
        records.append(closed_record(week))
        await self._record(records)
        log.info("closed %s", week)

    async def _late_corrections(self, week: str) -> None:
        late, tokens = await self.client.hmget(self.keys.total(week), ["late", "tokens"])
        reported_n, reported_tokens = self._loaded().late.get(week, (0, 0))
        late_n = int(late or 0)
        if late_n <= reported_n:
            return
        delta_tokens = int(tokens or 0) - reported_tokens
        alert = late_correction_alert(week, "total", late_n, delta_tokens)
        await self._check_trusted()
        await self.publish(self.settings.alerts_topic, alert)
        await self._record([late_record(week, late_n, int(tokens or 0))])

    # Retention ----------------------------------------------------------------------
    async def _expire(self, watermark: int, weeks: list[str]) -> list[str]:
        """Delete weeks older than the retention horizon (event time) from Redis and from the
        ranker's state; returns the weeks kept."""
        if not watermark:
            return weeks
        horizon = watermark - self.settings.retention_weeks * WEEK_MS
        # The state's own weeks too: one whose Redis data is already gone keeps its records.
        known = set(weeks) | self._loaded().weeks()
        doomed = sorted((w for w in known if week_end_ms(w) <= horizon), key=week_start_ms)
        for week in doomed:
            await self.delete_week(week)
        return [w for w in weeks if w not in doomed]

    async def delete_week(self, week: str) -> None:
        """Remove every key of one week, and its records of the ranker's state."""
        # The state topic first: if Redis fails next, the week is still listed and expired
        # again on the next tick, whereas records left behind would come back on every load.
        if self._state is not None:
            await self._record(week_tombstones(week, RANKED_DIMENSIONS))
        pattern = f"{self.keys.prefix}:*{week}*"
        doomed = [k async for k in self.client.scan_iter(match=pattern, count=1000)]
        pipe = self.client.pipeline(transaction=False)
        if doomed:
            pipe.delete(*doomed)
        start = week_start_ms(week)
        for offset in range(7):
            day = time.strftime("%Y-%m-%d", time.gmtime((start + offset * 86_400_000) / 1000))
            for dimension in RANKED_DIMENSIONS:
                pipe.delete(self.keys.daily(dimension, day))
        pipe.zrem(self.keys.weeks, week)
        pipe.zrem(self.keys.closed_weeks, week)
        pipe.srem(self.keys.finalized, week)
        pipe.hdel(self.keys.ranked, week)
        await pipe.execute()
        log.info("expired %s from Redis (older than %d weeks)", week, self.settings.retention_weeks)


def _adds_up(ranking: list[Ranked], total: int | None) -> bool:
    """True when a week's board holds all of the week's total: every event counts in every
    dimension, so a board whose members add up to less (or more) is being rewritten."""
    return sum(row.tokens for row in ranking) == (total or 0)
