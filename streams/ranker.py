"""The leader's periodic job: ranks, week closing, ranking changes, alerts, retention.

It works on Redis, where the snapshot writers of all workers merge their partitions into one
view. Everything it publishes carries a deterministic id, and what was published is recorded
in Redis, so a restarted leader does not publish the same change again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis

from aggregations.alerts import late_correction_alert, week_alerts
from aggregations.growth import growth_streak, wow_pct
from aggregations.rankings import Ranked, rank, rank_changes, rank_of
from aggregations.totals import RANKED_DIMENSIONS
from aggregations.weeks import previous_week, week_end_ms, week_id, week_start_ms
from streams.redis_keys import RedisKeys
from streams.settings import Settings
from streams.state import read_history, read_state

log = logging.getLogger("tokenboard.ranker")

Publish = Callable[[str, dict[str, Any]], Awaitable[None]]
WEEK_MS = 7 * 86_400_000
RANK_REFRESH_S = 5.0
SETTLE_MS = 3000
PIPELINE_CHUNK = 5000


class Ranker:
    """Turns the merged Redis view into ranks, closed weeks, change events and alerts."""

    def __init__(
        self, settings: Settings, client: aioredis.Redis, keys: RedisKeys, publish: Publish
    ) -> None:
        self.settings = settings
        self.client = client
        self.keys = keys
        self.publish = publish
        self._ranked_at: dict[str, float] = {}
        self._totals_seen: dict[str, tuple[Any, int]] = {}

    async def tick(self, now_ms: int | None = None) -> None:
        """One pass; cheap when nothing changed."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        state = await read_state(self.client, self.keys)
        if not state.weeks:
            return
        watermark = state.watermark_ms
        current = week_id(watermark) if watermark else state.weeks[-1]
        await self.client.set(self.keys.current_week, current)
        changed_at = int(await self.client.get(self.keys.snapshot_at) or 0)
        closed = set(state.closed)
        grace = self.settings.grace_seconds * 1000
        idle = self.settings.idle_close_seconds * 1000

        for week in state.weeks:
            await self._write_ranks(week)
        for week in state.weeks:
            if week in closed:
                continue
            end = week_end_ms(week) + grace
            if watermark >= end or (now >= end and now - changed_at >= idle):
                if await self._settled(week, now):
                    await self._close(week)
                    closed.add(week)
            else:
                await self._publish_live(week)
        for week in sorted(closed):
            await self._late_corrections(week)
        await self._expire(watermark, state.weeks)

    async def _settled(self, week: str, now_ms: int) -> bool:
        """True once the week's total stopped changing for SETTLE_MS.

        The watermark comes from the fastest partition; other partitions and the other
        workers' snapshots may still be adding to the week, and its final rankings must not
        be computed on part of the data.
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
        return rank({_text(m): int(s) for m, s in rows})

    async def _write_ranks(self, week: str) -> None:
        """Rank, previous rank and WoW of every member, when the week's data changed."""
        prev = previous_week(week)
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self.keys.total(week), "tokens")
        pipe.hget(self.keys.total(prev), "tokens")
        for dimension in RANKED_DIMENSIONS:
            pipe.zcard(self.keys.leaderboard(dimension, week))
        pipe.hget(self.keys.ranked, week)
        *parts, seen = await pipe.execute()
        fingerprint = "|".join(str(_text(p) if p is not None else "") for p in parts)
        if seen is not None and _text(seen) == fingerprint:
            return
        # While a week keeps changing (a backfill), rewriting every member's rank each second
        # costs more than the freshness is worth: at most once per RANK_REFRESH_S.
        now = time.monotonic()
        if seen is not None and now - self._ranked_at.get(week, 0.0) < RANK_REFRESH_S:
            return
        self._ranked_at[week] = now
        write = self.client.pipeline(transaction=False)
        for dimension in RANKED_DIMENSIONS:
            now = await self._ranking(dimension, week)
            before = {r.member: r for r in await self._ranking(dimension, prev)}
            for i, row in enumerate(now):
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
        totals = await self._totals()
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
        write.hset(self.keys.ranked, week, fingerprint)
        await write.execute()

    async def _totals(self) -> dict[str, int]:
        weeks = [_text(w) for w in await self.client.zrange(self.keys.weeks, 0, -1)]
        pipe = self.client.pipeline(transaction=False)
        for week in weeks:
            pipe.hget(self.keys.total(week), "tokens")
        values = await pipe.execute()
        return {w: int(v) for w, v in zip(weeks, values, strict=True) if v is not None}

    # Ranking changes -----------------------------------------------------------------
    async def _published(self, dimension: str, week: str) -> list[Ranked]:
        raw = await self.client.get(self.keys.published(dimension, week))
        if not raw:
            return []
        return [Ranked(rank=r, member=m, tokens=t) for m, r, t in orjson.loads(raw)]

    async def _store_published(self, dimension: str, week: str, top: list[Ranked]) -> None:
        value = orjson.dumps([[r.member, r.rank, r.tokens] for r in top])
        await self.client.set(self.keys.published(dimension, week), value)

    async def _publish_live(self, week: str) -> None:
        top_n = self.settings.top_n
        for dimension in RANKED_DIMENSIONS:
            current = (await self._ranking(dimension, week))[:top_n]
            before = await self._published(dimension, week)
            if rank_of(before) == rank_of(current):
                continue
            # The same move can happen twice in a week (ranks go back and forth); the
            # published list it starts from tells the two apart, and is itself deterministic.
            basis = hashlib.sha1(orjson.dumps([[r.member, r.rank] for r in before])).hexdigest()
            for event in rank_changes(dimension, week, before, current, top_n, "live"):
                event["id"] = hashlib.sha1(f"{event['id']}|{basis}".encode()).hexdigest()
                await self.publish(self.settings.rankings_topic, event)
            await self._store_published(dimension, week, current)

    async def _close(self, week: str) -> None:
        """Publish the week's final ranking changes and alerts, once, then mark it closed."""
        if not await self.client.sismember(self.keys.finalized, week):
            top_n = self.settings.top_n
            prev = previous_week(week)
            for dimension in RANKED_DIMENSIONS:
                final = (await self._ranking(dimension, week))[:top_n]
                before = (await self._ranking(dimension, prev))[:top_n]
                for event in rank_changes(dimension, week, before, final, top_n, "final"):
                    await self.publish(self.settings.rankings_topic, event)
                await self._store_published(dimension, week, final)
            history, meta = await read_history(self.client, self.keys, week)
            for alert in week_alerts(
                week, history, meta, top_n=top_n, surge_pct=self.settings.surge_pct
            ):
                await self.publish(self.settings.alerts_topic, alert)
            totals = await self.client.hmget(self.keys.total(week), ["late", "tokens"])
            await self.client.hset(
                self.keys.late_alerted,
                mapping={week: int(totals[0] or 0), f"{week}:tokens": int(totals[1] or 0)},
            )
            await self.client.sadd(self.keys.finalized, week)
        await self.client.zadd(self.keys.closed_weeks, {week: week_start_ms(week)})
        log.info("closed %s", week)

    async def _late_corrections(self, week: str) -> None:
        late, tokens = await self.client.hmget(self.keys.total(week), ["late", "tokens"])
        reported, reported_tokens = await self.client.hmget(
            self.keys.late_alerted, [week, f"{week}:tokens"]
        )
        late_n, reported_n = int(late or 0), int(reported or 0)
        if late_n <= reported_n:
            return
        delta_tokens = int(tokens or 0) - int(reported_tokens or 0)
        alert = late_correction_alert(week, "total", late_n, delta_tokens)
        await self.publish(self.settings.alerts_topic, alert)
        await self.client.hset(
            self.keys.late_alerted, mapping={week: late_n, f"{week}:tokens": int(tokens or 0)}
        )

    # Retention ----------------------------------------------------------------------
    async def _expire(self, watermark: int, weeks: list[str]) -> None:
        """Delete Redis data of weeks older than the retention horizon (event time)."""
        if not watermark:
            return
        horizon = watermark - self.settings.retention_weeks * WEEK_MS
        for week in weeks:
            if week_end_ms(week) > horizon:
                break
            await self.delete_week(week)

    async def delete_week(self, week: str) -> None:
        """Remove every key of one week."""
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


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value
