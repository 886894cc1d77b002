"""One worker process: the Faust app (stage 2, snapshots, ranker) plus the pre-aggregator.

:class:`Worker` builds the Faust app, its topic and tables, and registers the fold agent, the
snapshot and rank timers and the start-up tasks. It is built from a :class:`Settings` object
(no import-time app), so tests and several workers in one machine can each have their own.
"""

from __future__ import annotations

import os
import socket
from typing import Any, cast

import faust
from mode import BaseSignalT
from mode.types.signals import SignalHandlerT

from streams import metrics
from streams.http.web import serve_health
from streams.leader.ranker import Ranker
from streams.leader.state_log import RankerStateLog
from streams.prices import load_prices
from streams.settings import Settings
from streams.store.client import connect
from streams.store.keys import RedisKeys
from streams.topics import PROGRESS_TABLE, WEEKLY_TABLE, ensure_topics
from streams.worker.catalog import load_catalog
from streams.worker.faust_app import add_task, add_timer, new_faust_app
from streams.worker.fold import ChangelogBuffer, Fold, PendingChanges
from streams.worker.gap_guard import TAIL_CHECK_S, GapGuard
from streams.worker.preaggregator import PreAggregator
from streams.worker.ranking import RankerPublisher, RankJob
from streams.worker.snapshot_job import SnapshotJob
from streams.worker.span_bridge import SpanBridge
from streams.worker.tables import WeeklyTable

#: How often the leader ranks, in seconds.
RANK_INTERVAL_S = 1.0


class Worker:
    """The Faust app of one worker and the objects around it (tests reach into these)."""

    def __init__(self, settings: Settings, health: socket.socket | None = None) -> None:
        self.settings = settings
        self.app = new_faust_app(settings)
        self.pre = PreAggregator(
            settings,
            load_catalog(settings.catalog_path or None),
            prices=load_prices(settings.prices_path or None),
        )
        #: OTLP spans from a Collector's Kafka topic to the usage topic (None: not configured)
        self.span_bridge = SpanBridge.for_settings(settings, self.pre.catalog)
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}"
        #: the bound socket of /healthz, /readyz and /metrics (None: not served)
        self.health = health
        #: what the fold changed since the last snapshot
        self.changes = PendingChanges()
        keys = RedisKeys(settings.redis_prefix)
        self.partials = self.app.topic(
            settings.partials_topic,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )
        # Values are orjson bytes: Python dicts of the same data take about five times the
        # memory, and the changelog then needs no serialization of its own.
        self.weekly = WeeklyTable(
            self.app,
            name=WEEKLY_TABLE,
            default=None,
            beacon=self.app.tables.beacon,
            partitions=settings.partitions,
            key_type=str,
            value_type=bytes,
        )
        self.app.tables.add(self.weekly)
        # Per (partials partition X, source usage partition p), key "X:p": the largest watermark
        # of p folded from X. The ranker closes a week on the smallest of them. A key is only
        # set while a record of partition X is processed, and Faust writes a table's changelog
        # to the current event's partition: X's progress recovers with X's data, never ahead.
        self.progress = cast(
            "faust.Table[str, int]",
            self.app.Table(
                PROGRESS_TABLE,
                default=None,
                partitions=settings.partitions,
                key_type=str,
                value_type=int,
            ),
        )
        self.fold = Fold(settings, self.weekly, self.progress, self.changes, self._changelog_buffer)
        self.gap_guard = GapGuard(self.app, settings, self.fold.fold)
        redis_client = connect(settings)
        self.snapshots = SnapshotJob(
            self.app,
            settings,
            self.weekly,
            self.progress,
            self.changes,
            redis_client,
            keys,
            self.worker_id,
        )
        self.publisher = RankerPublisher(settings)
        self.state_log = RankerStateLog(settings)
        ranker = Ranker(settings, redis_client, keys, self.publisher.publish, self.state_log)
        self.ranking = RankJob(self.app, ranker)
        self._register()

    # Kept under the names WorkerParts had: tests and tools read them.
    @property
    def dirty(self) -> dict[str, set[str]]:
        """Table key -> days changed since the last snapshot."""
        return self.changes.days

    @dirty.setter
    def dirty(self, value: dict[str, set[str]]) -> None:
        self.changes.days = value

    @property
    def progress_dirty(self) -> set[str]:
        """Progress fields ("X:p") changed since the last snapshot."""
        return self.changes.progress

    @progress_dirty.setter
    def progress_dirty(self, value: set[str]) -> None:
        self.changes.progress = value

    def _register(self) -> None:
        """Register the agent, timers, tasks and shutdown hook, in the order Faust starts
        them."""
        guard = self.gap_guard

        async def fold_partials(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                message = event.message
                await guard.fold_in_order(event.value, message.tp, message.offset)

        self.app.agent(self.partials, name="fold")(fold_partials)
        # Records Faust dropped at the end of a partition, with nothing produced after them
        # (RELIABILITY.md, bug 25), are revealed by a probe once the partition stays idle.
        add_timer(self.app, TAIL_CHECK_S, guard.check_tails)
        add_timer(self.app, self.settings.snapshot_interval_ms / 1000, self.snapshots.tick)
        add_timer(self.app, RANK_INTERVAL_S, self.ranking.tick, on_leader=True)
        add_task(self.app, self._start_preaggregator)
        add_task(self.app, self._start_health)
        add_task(self.app, self._report_ready)
        if self.span_bridge is not None:
            add_task(self.app, self.span_bridge.run)
        # A cast, not a check: mypy accepts no function for mode's handler type (a named
        # argument next to **kwargs), the signature below is the one mode calls.
        self.app.on_before_shutdown.connect(cast("SignalHandlerT[Any]", self._stop))

    def _changelog_buffer(self) -> ChangelogBuffer:
        return self.app.producer.buffer

    async def _start_preaggregator(self) -> None:
        await ensure_topics(self.settings)
        await self.pre.run()

    async def _start_health(self) -> None:
        await serve_health(self.health, lambda: self.pre.ready.is_set(), "worker")

    async def _report_ready(self) -> None:
        """``tokenboard_worker_ready`` is 1 once /readyz answers ready (0 again at shutdown)."""
        await self.pre.ready.wait()
        metrics.WORKER_READY.set(1)

    async def _stop(
        self, app: faust.App, *args: Any, signal: BaseSignalT[Any], **kwargs: Any
    ) -> None:
        """Stop the pre-aggregator and the ranker's clients before Faust shuts down."""
        metrics.WORKER_READY.set(0)
        self.pre.stop()
        if self.span_bridge is not None:
            self.span_bridge.stop()
        await self.publisher.stop()
        await self.state_log.stop()


#: The name build_app's result had before it became a class.
WorkerParts = Worker


def build_app(settings: Settings, health: socket.socket | None = None) -> Worker:
    """A Faust app wired for tokenboard; ``health`` is the bound socket of /healthz,
    /readyz and /metrics (None: not served)."""
    return Worker(settings, health)
