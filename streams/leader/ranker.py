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

This module holds the decisions (close, publish live changes, late corrections) and the
:class:`Ranker` facade; the rank fields are :mod:`~streams.leader.rank_fields`, the state and
its Redis mirror :mod:`~streams.leader.state_mirror`, retention
:mod:`~streams.leader.retention`, the pure decision rules :mod:`~streams.leader.closing`,
what closing alerts read :mod:`~streams.leader.history`.

A tick costs what changed since the last one: a few round trips whatever the number of weeks
and members when nothing did, the top N of each open week (not its whole boards) for live
changes, and for a week whose data changed the boards that changed and the member hashes
whose fields moved (see :mod:`~streams.leader.rank_fields`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, cast

import redis.asyncio as aioredis

from aggregations.alerts import late_correction_alert, week_alerts
from aggregations.progress import closing_watermark
from aggregations.ranker_state import (
    Record,
    closed_record,
    finalized_record,
    late_record,
    published_record,
)
from aggregations.rankings import rank_changes, rank_of
from aggregations.totals import RANKED_DIMENSIONS
from aggregations.weeks import previous_week, week_id
from streams import metrics
from streams.leader.closing import SETTLE_MS, SettleWatch, live_basis, live_event_id, week_due
from streams.leader.history import alert_history
from streams.leader.rank_fields import PIPELINE_CHUNK, RANK_REFRESH_S, RankFields
from streams.leader.retention import Retention
from streams.leader.state_log import RankerStateLog
from streams.leader.state_mirror import WAIT_LOG_S, RedisStateLost, StateMirror
from streams.settings import Settings
from streams.store.keys import RedisKeys
from streams.store.state import read_state

__all__ = [
    "PIPELINE_CHUNK",
    "RANK_REFRESH_S",
    "SETTLE_MS",
    "WAIT_LOG_S",
    "Publish",
    "Ranker",
    "RedisStateLost",
]

log = logging.getLogger("tokenboard.ranker")

Publish = Callable[[str, dict[str, Any]], Awaitable[None]]
#: How a rank tick ended (the label of ``tokenboard_ranker_ticks_total``).
TickOutcome = Literal["ranked", "waiting", "state_lost", "failed"]


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
        self.ranks = RankFields(client, keys)
        self.mirror = StateMirror(client, keys, state_log, settings.partitions)
        self.retention = Retention(client, keys, settings.retention_weeks, self.mirror)
        self.settle = SettleWatch()

    def forget(self) -> None:
        """Drop the in-memory state: the next tick reads it back from the state topic.

        Called after every rebalance, since leadership only moves then and another leader
        may have published in the meantime.
        """
        self.mirror.forget()
        # Another leader may have written rank fields meanwhile.
        self.ranks.forget()

    async def tick(self, now_ms: int | None = None) -> None:
        """One pass; cheap when nothing changed. Counted and timed, whatever its outcome."""
        started = time.perf_counter()
        outcome: TickOutcome = "failed"
        try:
            outcome = await self._tick(now_ms)
        finally:
            metrics.RANKER_TICKS.labels(outcome).inc()
            metrics.RANKER_TICK_SECONDS.observe(time.perf_counter() - started)

    async def _tick(self, now_ms: int | None) -> TickOutcome:
        """One pass; returns the outcome :data:`~streams.metrics.RANKER_TICKS` counts."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if not await self.mirror.sync():
            return "waiting"
        try:
            await self._pass(now)
        except RedisStateLost:
            # The next tick restores the mirror and waits for the snapshots' rewrite.
            log.warning("Redis lost its state during a ranker tick: nothing published")
            return "state_lost"
        return "ranked"

    async def delete_week(self, week: str) -> None:
        """Remove every key of one week, and its records of the ranker's state."""
        await self.retention.delete_week(week)

    async def _pass(self, now: int) -> None:
        memory = self.mirror.state()
        state = await read_state(self.client, self.keys)
        watermark = state.watermark_ms
        # Before anything else: a week past the horizon must not be closed (again) because
        # a snapshot rewrite brought its data back for a moment.
        weeks = await self.retention.expire(watermark, state.weeks)
        if not weeks:
            return
        current = week_id(watermark) if watermark else weeks[-1]
        await self.client.set(self.keys.current_week, current)
        changed_at = int(await self.client.get(self.keys.snapshot_at) or 0)
        closing = await self._closing_watermark(watermark)
        grace = self.settings.grace_seconds * 1000
        idle = self.settings.idle_close_seconds * 1000

        totals = await self.ranks.totals()
        await self.ranks.update(weeks, totals)
        for week in weeks:
            if week in memory.closed:
                continue
            # Event time: the slowest partition's progress. Wall clock: partitions that went
            # idle (no snapshot changed anything for `idle`) hold nothing back.
            if week_due(week, closing, now, changed_at, grace, idle):
                if await self._settled(week, now):
                    await self._close(week)
            else:
                await self._publish_live(week)
        await self._late_corrections(sorted(memory.closed))

    async def _closing_watermark(self, watermark: int) -> int:
        """The event time up to which Redis holds every partition's data.

        The minimum over the progress hash's (partials partition, source) pairs, written by
        the snapshot writers after the data they vouch for; ``watermark`` (the fastest
        partition's event time) only when the hash is empty, i.e. writers of a version
        without it. After Redis lost its state the ranker waits for every partition's
        rewrite (:meth:`StateMirror.sync`), which brings the hash back, before it gets here.
        """
        raw = cast(dict[str, str], await self.client.hgetall(self.keys.progress))
        progress = {field: int(ms) for field, ms in raw.items()}
        closing = closing_watermark(progress, range(self.settings.partitions))
        return watermark if closing is None else closing

    async def _settled(self, week: str, now_ms: int) -> bool:
        """True once the week's total stopped changing for SETTLE_MS (see
        :meth:`SettleWatch.settled`)."""
        tokens = cast("str | None", await self.client.hget(self.keys.total(week), "tokens"))
        return self.settle.settled(week, tokens, now_ms)

    # Ranking changes -----------------------------------------------------------------
    async def _publish_live(self, week: str) -> None:
        top_n = self.settings.top_n
        published = self.mirror.state().published
        tops = await self.ranks.tops(week, top_n)
        for dimension in RANKED_DIMENSIONS:
            current = tops[dimension]
            before = published.get((dimension, week), [])
            if rank_of(before) == rank_of(current):
                continue
            # The same move can happen twice in a week (ranks go back and forth); the
            # published list it starts from tells the two apart, and is itself deterministic.
            basis = live_basis(before)
            await self.mirror.check_trusted()
            for event in rank_changes(dimension, week, before, current, top_n, "live"):
                event["id"] = live_event_id(event["id"], basis)
                await self.publish(self.settings.rankings_topic, event)
            await self.mirror.record([published_record(dimension, week, current)])

    async def _close(self, week: str) -> None:
        """Publish the week's final ranking changes and alerts, once, then mark it closed."""
        records: list[Record] = []
        if week not in self.mirror.state().finalized:
            top_n = self.settings.top_n
            prev = previous_week(week)
            events: list[tuple[str, dict[str, Any]]] = []
            finals = await self.ranks.tops(week, top_n)
            befores = await self.ranks.tops(prev, top_n)
            for dimension in RANKED_DIMENSIONS:
                final, before = finals[dimension], befores[dimension]
                for event in rank_changes(dimension, week, before, final, top_n, "final"):
                    events.append((self.settings.rankings_topic, event))
                records.append(published_record(dimension, week, final))
            history, meta = await alert_history(self.client, self.keys, week, top_n)
            for alert in week_alerts(
                week, history, meta, top_n=top_n, surge_pct=self.settings.surge_pct
            ):
                events.append((self.settings.alerts_topic, alert))
            totals = await self.client.hmget(self.keys.total(week), ["late", "tokens"])
            records.append(late_record(week, int(totals[0] or 0), int(totals[1] or 0)))
            records.append(finalized_record(week))
            await self.mirror.check_trusted()
            for topic, event in events:
                await self.publish(topic, event)
        # After everything it stands for: a crash before it publishes the same ids again.
        records.append(closed_record(week))
        await self.mirror.record(records)
        log.info("closed %s", week)

    async def _late_corrections(self, weeks: list[str]) -> None:
        """Alert the late events that reached closed ``weeks`` since the last alert."""
        # One round trip for every closed week: there are as many as retention keeps.
        pipe = self.client.pipeline(transaction=False)
        for week in weeks:
            pipe.hmget(self.keys.total(week), ["late", "tokens"])
        rows = await pipe.execute() if weeks else []
        for week, (late, tokens) in zip(weeks, rows, strict=True):
            reported_n, reported_tokens = self.mirror.state().late.get(week, (0, 0))
            late_n = int(late or 0)
            if late_n <= reported_n:
                continue
            delta_tokens = int(tokens or 0) - reported_tokens
            alert = late_correction_alert(week, "total", late_n, delta_tokens)
            await self.mirror.check_trusted()
            await self.publish(self.settings.alerts_topic, alert)
            await self.mirror.record([late_record(week, late_n, int(tokens or 0))])
