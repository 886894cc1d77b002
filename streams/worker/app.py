"""``tokenboard worker``: the Faust app (stage 2, snapshots, ranker) plus the pre-aggregator.

Built by :func:`build_app` from a :class:`Settings` object (no import-time app), so tests and
several workers in one machine can each have their own.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from aggregations.partials import decode_record, partition_for
from aggregations.progress import parse_progress_field, progress_field
from aggregations.totals import apply_partial, expired_keys
from aggregations.weeks import WEEK_MS, week_id
from streams import metrics
from streams.http.web import PortInUse, bind_listener, serve_health
from streams.leader.ranker import Ranker
from streams.leader.state_log import RankerStateLog
from streams.settings import Settings
from streams.store.client import connect
from streams.store.keys import RedisKeys
from streams.topics import ensure_topics
from streams.worker.catalog import load_catalog
from streams.worker.preaggregator import PreAggregator
from streams.worker.rewind import RewindingApp
from streams.worker.snapshots import SnapshotWriter
from streams.worker.tables import WeeklyTable

log = logging.getLogger("tokenboard.worker")

DEFAULT_WORKER_WEB_PORT = Settings().worker_web_port

#: Changelog records waiting in Faust's producer buffer before the fold waits for them.
CHANGELOG_BUFFER_MAX = 5000


@dataclass
class WorkerParts:
    """The app and the objects around it (tests reach into these)."""

    app: faust.App
    settings: Settings
    pre: PreAggregator
    #: table key -> days changed since the last snapshot
    dirty: dict[str, set[str]] = field(default_factory=dict)
    #: progress fields ("X:p") changed since the last snapshot
    progress_dirty: set[str] = field(default_factory=set)
    worker_id: str = ""


def _broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{host}" for host in bootstrap.split(","))


def _faust_credentials(settings: Settings) -> Any:
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    ssl_context = None
    if "SSL" in protocol:
        from aiokafka.helpers import create_ssl_context

        ssl_context = create_ssl_context(cafile=settings.kafka_ssl_cafile or None)
    if settings.kafka_sasl_mechanism:
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=ssl_context,
        )
    return ssl_context


def build_app(settings: Settings, health: socket.socket | None = None) -> WorkerParts:
    """A Faust app wired for tokenboard; ``health`` is the bound socket of /healthz,
    /readyz and /metrics (None: not served)."""
    (settings.run_path / "faust").mkdir(parents=True, exist_ok=True)
    app = RewindingApp(
        settings.app_id,
        broker=_broker_url(settings.kafka_bootstrap),
        broker_credentials=_faust_credentials(settings),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        web_enabled=False,
        autodiscover=False,
        producer_acks=-1,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        broker_session_timeout=20.0,
        broker_heartbeat_interval=3.0,
        table_standby_replicas=0,
        # Faust's own data folder goes under the run folder, not the working directory.
        datadir=str(settings.run_path / "faust" / settings.app_id),
        # Changelog records leave in few large requests instead of one request each.
        producer_linger=0.02,
        producer_max_batch_size=1024 * 1024,
        key_serializer="json",
        value_serializer="json",
    )
    parts = WorkerParts(
        app=app,
        settings=settings,
        pre=PreAggregator(settings, load_catalog(settings.catalog_path or None)),
        worker_id=f"{socket.gethostname()}-{os.getpid()}",
    )
    keys = RedisKeys(settings.redis_prefix)
    partials = app.topic(
        settings.partials_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    # Values are orjson bytes: Python dicts of the same data take about five times the
    # memory, and the changelog then needs no serialization of its own.
    weekly = app.tables.add(
        WeeklyTable(
            app,
            name="weekly",
            default=None,
            beacon=app.tables.beacon,
            partitions=settings.partitions,
            key_type=str,
            value_type=bytes,
        )
    )
    # Per (partials partition X, source usage partition p), key "X:p": the largest watermark
    # of p folded from X. The ranker closes a week on the smallest of them. A key is only
    # set while a record of partition X is processed, and Faust writes a table's changelog
    # to the current event's partition: X's progress recovers with X's data, never ahead.
    progress = app.Table(
        "progress",
        default=None,
        partitions=settings.partitions,
        key_type=str,
        value_type=int,
    )
    # partition -> (monotonic time, week of the retention horizon) of its last expiry check
    retention_checked: dict[int, tuple[float, str]] = {}
    newest_ts = [0]

    @app.agent(partials, name="fold")
    async def fold(stream: Any) -> None:
        async for event in stream.events():
            applied = replayed = 0
            record = decode_record(event.value)
            for partial in record.partials:
                stored = weekly.get(partial.key)
                new = apply_partial(orjson.loads(stored) if stored else None, partial)
                if new is None:
                    replayed += 1
                    continue
                # orjson's result keeps a 4 KiB allocation even for a short value; an
                # exact-size copy is what the table should hold (10x less memory).
                weekly[partial.key] = memoryview(orjson.dumps(new)).tobytes()
                parts.dirty.setdefault(partial.key, set()).update(partial.days)
                newest_ts[0] = max(newest_ts[0], partial.max_ts)
                applied += 1
            if record.watermark_ms is not None:
                # After the record's partials: whatever X holds of p up to this event time
                # is folded once this is set.
                mark = progress_field(event.message.partition, record.source)
                if record.watermark_ms > (progress.get(mark) or 0):
                    progress[mark] = record.watermark_ms
                    parts.progress_dirty.add(mark)
            metrics.PARTIALS_APPLIED.inc(applied)
            metrics.PARTIALS_REPLAYED.inc(replayed)
            _expire_old_weeks(event.message.partition)
            await _changelog_backpressure()

    async def _changelog_backpressure() -> None:
        """Wait while Faust's changelog buffer is long: it holds every value not yet sent.

        Faust only waits for it to shrink by 100 records between two records, and one
        partials record can set thousands of keys, so the buffer (and memory) would grow
        without bound while a backlog is folded.
        """
        buffer = app.producer.buffer
        while buffer.size > CHANGELOG_BUFFER_MAX:
            if not await buffer.flush_atmost(buffer.size - CHANGELOG_BUFFER_MAX):
                break  # nothing was sent for 0.1 s: let the commit's flush deal with it

    def _expire_old_weeks(partition: int) -> None:
        """Tombstone this partition's keys of weeks past the retention horizon.

        At most every retention_check_seconds, except when the horizon entered another week
        since the partition's last check: the record that triggered that check may have come
        before the newest event time (an empty, watermark-only record), and a partition may
        get no further record for a long time.
        """
        now = time.monotonic()
        horizon = week_id(newest_ts[0] - settings.retention_weeks * WEEK_MS)
        checked_at, checked_horizon = retention_checked.get(partition, (-1e18, ""))
        if now - checked_at < settings.retention_check_seconds and horizon == checked_horizon:
            return
        retention_checked[partition] = (now, horizon)
        owned = [k for k in weekly if partition_for(k, settings.partitions) == partition]
        doomed = expired_keys(owned, newest_ts[0], settings.retention_weeks)
        for key in doomed:
            del weekly[key]
        if doomed:
            log.info("partition %d: dropped %d keys older than the horizon", partition, len(doomed))

    redis_client = connect(settings)
    writer = SnapshotWriter(redis_client, keys, parts.worker_id)
    seen_assignment: set[Any] = set()

    def owned_partitions() -> set[int]:
        assignment = app.consumer.assignment() if app.consumer else set()
        return {tp.partition for tp in assignment if tp.topic == settings.partials_topic}

    @app.timer(settings.snapshot_interval_ms / 1000)
    async def snapshot() -> None:
        if app.rebalancing or getattr(app, "in_recovery", False):
            return  # a full rewrite follows once the recovered table is complete
        try:
            await write_snapshot()
        except RedisError as exc:
            # Redis down or restarting: keep counting; the marker check rewrites everything
            # once it is back (a restarted-empty Redis has no marker).
            log.warning("snapshot skipped, Redis unavailable: %r", exc)
            seen_assignment.clear()

    async def write_snapshot() -> None:
        owned = owned_partitions()
        full = owned != seen_assignment or await writer.needs_full_rewrite()
        dirty = parts.dirty
        parts.dirty = {}
        # The progress is taken now, before any value is read, and written after them: the
        # values read later are at least as new, so Redis never shows a partition's progress
        # ahead of its data (the ranker closes weeks on it).
        marks = list(progress.keys()) if full else parts.progress_dirty
        parts.progress_dirty = set()
        owned_progress = {
            mark: ms
            for mark in marks
            if parse_progress_field(mark)[0] in owned and (ms := progress.get(mark)) is not None
        }
        candidates = list(weekly.keys()) if full else list(dirty)
        # The memory store keeps keys of partitions that moved to another worker; writing
        # those stale values would overwrite the new owner's snapshot.
        # A generator: a full rewrite of a large table must not decode it all at once.
        mine = (
            (key, orjson.loads(value))
            for key in candidates
            if partition_for(key, settings.partitions) in owned
            and (value := weekly.get(key)) is not None
        )
        await writer.write(mine, changed_days=None if full else dirty, progress=owned_progress)
        if full:
            seen_assignment.clear()
            seen_assignment.update(owned)
            await writer.mark_complete()
            if owned:
                # After Redis lost its state the ranker waits until every partition is back.
                await redis_client.sadd(keys.snapshot_partitions, *sorted(owned))
        if writer.last_write_s:
            metrics.SNAPSHOT_AGE.set(time.time() - writer.last_write_s)

    producer_box: dict[str, AIOKafkaProducer] = {}

    async def publish(topic: str, event: dict[str, Any]) -> None:
        producer = producer_box.get("p")
        if producer is None:
            producer = AIOKafkaProducer(
                **settings.kafka_client_options(), acks="all", enable_idempotence=True
            )
            await producer.start()
            producer_box["p"] = producer
        await producer.send_and_wait(topic, orjson.dumps(event), key=event["id"].encode())
        metrics.EVENTS_PRODUCED.labels(topic).inc()

    state_log = RankerStateLog(settings)
    ranker = Ranker(settings, redis_client, keys, publish, state_log)
    ranked_in_rebalance = [-1]

    @app.timer(1.0, on_leader=True)
    async def rank_tick() -> None:
        # Leadership moves only in a rebalance, and another leader may have published
        # meanwhile: the first tick after one reads the ranker's state topic again.
        if app.rebalancing_count != ranked_in_rebalance[0]:
            ranked_in_rebalance[0] = app.rebalancing_count
            ranker.forget()
        try:
            await ranker.tick()
        except (RedisError, KafkaError) as exc:
            # Unpublished changes are recomputed next tick: what was published is recorded.
            log.warning("ranker tick skipped, Redis or Kafka unavailable: %r", exc)

    @app.task
    async def start_preaggregator() -> None:
        await ensure_topics(settings)
        await parts.pre.run()

    @app.task
    async def start_health() -> None:
        await serve_health(health, lambda: parts.pre.ready.is_set(), "worker")

    @app.on_before_shutdown.connect
    async def stop_preaggregator(app: Any, **kwargs: Any) -> None:
        parts.pre.stop()
        producer = producer_box.pop("p", None)
        if producer is not None:
            await producer.stop()
        await state_log.stop()

    return parts


def bind_health_port(settings: Settings) -> socket.socket | None:
    """The health and metrics socket of a worker, bound before anything else starts.

    A negative port disables it; 0 takes any free port. When the default port is taken (a
    second worker on this machine) the worker takes a free one and says which; a port set
    on purpose that is taken stops the worker with one line naming the setting. The bound
    port goes to ``TOKENBOARD_WORKER_PORT_FILE`` when that is set, for supervisors and tests.
    """
    port = settings.worker_web_port
    if port < 0:
        return None
    try:
        listener = bind_listener(port)
    except PortInUse:
        if port != DEFAULT_WORKER_WEB_PORT:
            raise
        listener = bind_listener(0)
        print(
            f"worker: port {port} is in use (another worker on this machine?); health and "
            f"metrics on port {listener.getsockname()[1]} instead "
            "(TOKENBOARD_WORKER_WEB_PORT chooses one)",
            file=sys.stderr,
        )
    bound = int(listener.getsockname()[1])
    log.info("health and metrics on http://127.0.0.1:%d (/healthz, /readyz, /metrics)", bound)
    if settings.worker_port_file:
        # Written whole or not at all: a reader polls for it.
        target = Path(settings.worker_port_file)
        partial = target.with_name(target.name + ".tmp")
        partial.write_text(f"{bound}\n")
        partial.replace(target)
    return listener


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler: run one worker until SIGTERM/SIGINT."""
    if getattr(args, "web_port", None) is not None:
        settings = settings.replace(worker_web_port=args.web_port)
    try:
        health = bind_health_port(settings)
    except PortInUse:
        print(
            f"error: port {settings.worker_web_port} for the worker's health and metrics is "
            "in use: set TOKENBOARD_WORKER_WEB_PORT (or --web-port) to a free port, "
            "or 0 for any",
            file=sys.stderr,
        )
        return 2
    asyncio.run(ensure_topics(settings))
    parts = build_app(settings, health)
    worker = faust.Worker(parts.app, loglevel=getattr(args, "loglevel", "warning"), quiet=True)
    # With its terminal spinner Faust lowers the root logger to DEBUG, and every debug line
    # of aiokafka and mode is then built and dropped: several percent of a worker's CPU.
    worker.spinner = None
    worker.execute_from_commandline()
    return 0
