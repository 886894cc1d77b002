"""A private 3-node KRaft cluster (RF 3, ``min.insync.replicas=2``) under a steady load.

Events flow through the SDK (``UsageProducer``) and the ingest gateway all the time; what
is broken meanwhile is a broker (the leader of the busiest usage partition, then the active
controller, each SIGKILLed and started again) and the worker group (1 -> 3 -> 1 workers,
leaving by SIGTERM and by SIGKILL). After each step Redis must show exactly the events
acknowledged to their senders: none lost, none counted twice. The longest pause in the
totals while the load ran is recorded for RELIABILITY.md (``record_figures``).

The cluster is started once for the module (about 35 s) under the module's tmp folder, on
ports from ``reserve_ports``; Redis is the shared one, under each test's own key prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from aggregations.events import UsageEvent, encode_event
from streams.dev.stack import LocalStack
from streams.dev.workerproc import reserve_ports
from streams.sdk.producer import UsageProducer
from streams.settings import Settings
from streams.store.keys import RedisKeys
from streams.tasks import cancel_and_wait
from tests.integration import process_logs
from tests.integration.private_stack import (
    PRIVATE_KAFKA_HEAP,
    Expected,
    _seed_classpath,
    make_events,
    record_figures,
    running_gateway,
    send_until_acknowledged,
    wait_for_totals,
    wait_until,
)
from tests.integration.processes import WorkerProcess

# One worker runs the module: its fixture starts a private 3-broker cluster.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cluster")]

StartWorker = Callable[..., WorkerProcess]
Client = TestClient[web.Request, web.Application]
JSON = {"Content-Type": "application/json"}
WEEK = "2026-W46"
BROKERS = 3
#: How long a refused SDK batch is sent again before the test fails (seconds).
SEND_RETRY_S = 120.0
#: How long the load runs after each fault before the next step (seconds).
AFTER_FAULT_S = 12.0
_T0 = time.monotonic()


def trace(what: str) -> None:
    """A timestamped line in the test's captured stdout: a failure shows where it stood."""
    print(f"[{time.strftime('%H:%M:%S')} +{time.monotonic() - _T0:7.1f}s] {what}", flush=True)


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, stack_settings: Settings
) -> Iterator[LocalStack]:
    """Three broker+controller nodes on free ports, stopped at the end of the module."""
    root = tmp_path_factory.mktemp("cluster")
    ports = reserve_ports(2 * BROKERS)
    settings = stack_settings.replace(
        run_dir=str(root), kafka_heap=PRIVATE_KAFKA_HEAP, partitions=4
    )
    stack = LocalStack(
        settings,
        log=lambda line: None,
        brokers=BROKERS,
        broker_ports=[(ports[2 * i], ports[2 * i + 1]) for i in range(BROKERS)],
    )
    _seed_classpath(root, settings.kafka_version)
    try:
        stack.start_service("kafka")
        yield stack
    finally:
        stack.stop_service("kafka")


@pytest.fixture
def on_cluster(cluster: LocalStack, settings: Settings) -> Settings:
    """The test's settings pointed at the cluster, its topics on every node."""
    for service, path in cluster.log_files("kafka"):
        process_logs.watch(path, f"cluster {service}")
    return settings.replace(kafka_bootstrap=cluster.bootstrap, replication=cluster.replication)


# The load ------------------------------------------------------------------------------
def as_json(events: list[UsageEvent]) -> bytes:
    """A JSON array body of events, as a client would post it."""
    return orjson.dumps([orjson.loads(encode_event(e)) for e in events])


class Load:
    """SDK batches and gateway posts at a steady pace; a batch that fails is sent again with
    the same ids until it is acknowledged, and only then counts as sent."""

    def __init__(self, producer: UsageProducer, client: Client, tag: str) -> None:
        self.producer = producer
        self.client = client
        self.tag = tag
        self.sent: list[UsageEvent] = []
        self.resent = 0
        self.statuses: Counter[int] = Counter()
        self._sdk_n = 0
        self._http_n = 0

    async def run_for(self, seconds: float) -> None:
        """Both senders for ``seconds``; returns when their last batch is acknowledged."""
        until = time.monotonic() + seconds
        await asyncio.gather(self._sdk(until), self._gateway(until))

    async def _sdk(self, until: float) -> None:
        while time.monotonic() < until:
            batch = make_events(f"{self.tag}-sdk", self._sdk_n, 100, week=WEEK)
            self._sdk_n += len(batch)
            refusals = await send_until_acknowledged(
                self.producer,
                batch,
                give_up_after_s=SEND_RETRY_S,
                refused=lambda exc: trace(f"sdk batch at {self._sdk_n} failed ({exc!r})"),
                pause_s=0.0,
            )
            self.resent += refusals * len(batch)  # same ids: counted once
            self.sent.extend(batch)
            await asyncio.sleep(0.2)

    async def _gateway(self, until: float) -> None:
        while time.monotonic() < until:
            batch = make_events(f"{self.tag}-http", self._http_n, 40, week=WEEK)
            self._http_n += len(batch)
            deadline = time.monotonic() + 120
            while True:
                response = await self.client.post("/v1/events", data=as_json(batch), headers=JSON)
                self.statuses[response.status] += 1
                body = await response.json()
                if response.status == 200:
                    assert body["accepted"] == len(batch), body
                    break
                assert response.status == 503, body
                trace(f"gateway answered 503 at {self._http_n}: {body}")
                assert time.monotonic() < deadline, "the gateway never accepted the batch"
                self.resent += len(batch)
                await asyncio.sleep(0.5)
            self.sent.extend(batch)
            await asyncio.sleep(0.25)


class TotalsWatch:
    """Samples the week's total tokens in Redis every 0.1 s: when they last changed."""

    def __init__(self, settings: Settings) -> None:
        self.key = RedisKeys(settings.redis_prefix).total(WEEK)
        self.url = settings.redis_url
        self.changes: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        client = aioredis.from_url(self.url)
        last: object = None
        try:
            while True:
                with contextlib.suppress(aioredis.RedisError, OSError):
                    value = await client.hget(self.key, "tokens")
                    if value != last:
                        last = value
                        self.changes.append(time.monotonic())
                await asyncio.sleep(0.1)
        finally:
            await client.aclose()

    def longest_pause(self, start: float, end: float) -> float:
        """The longest time in [start, end] during which the totals did not change."""
        began, ended = self.longest_pause_span(start, end)
        return ended - began

    def longest_pause_span(self, start: float, end: float) -> tuple[float, float]:
        """(first, last) moment of the longest time in [start, end] without a change."""
        points = [start, *[t for t in self.changes if start < t < end], end]
        return max(itertools.pairwise(points), key=lambda span: span[1] - span[0])

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[TotalsWatch]:
        """Sample while the block runs."""
        self._task = asyncio.ensure_future(self._poll())
        try:
            yield self
        finally:
            # One cancel() can be lost in a Redis command (streams/tasks.py): the sampler then
            # ran on and this block never ended (CI stop 23 hit pytest's limit here).
            assert await cancel_and_wait([self._task], 10), "the totals sampler did not stop"


# Kafka metadata ----------------------------------------------------------------------------
async def partition_metadata(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Per topic, its partitions' metadata (leader, replicas, isr)."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options(), request_timeout_ms=5000)
    await admin.start()
    try:
        topics = await admin.describe_topics()
    finally:
        await admin.close()
    return {str(t["topic"]): list(t["partitions"]) for t in topics}


async def busiest_usage_partition(settings: Settings) -> tuple[int, int]:
    """(partition, leader node id) of the usage partition with the most records."""
    consumer = AIOKafkaConsumer(**settings.kafka_client_options(), enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(settings.usage_topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(settings.usage_topic) or set()
        tps = [TopicPartition(settings.usage_topic, p) for p in parts]
        assert tps, "the usage topic has no partitions"
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    partition = max(ends, key=lambda tp: ends[tp]).partition
    meta = await partition_metadata(settings)
    for p in meta[settings.usage_topic]:
        if p.get("partition", p.get("partition_index")) == partition:
            return partition, int(p["leader"])
    raise AssertionError(f"no metadata for usage partition {partition}")


async def wait_full_isr(settings: Settings, timeout_s: float = 90.0) -> float:
    """Wait until every partition of the test's topics and the offsets topic has all
    replicas in sync (the next fault may take any node); returns the seconds it took."""
    started = time.monotonic()

    async def in_sync() -> bool:
        meta = await partition_metadata(settings)
        ours = [
            p
            for topic, parts in meta.items()
            if topic.startswith(settings.topic_prefix)
            or topic.startswith(settings.app_id)
            or topic == "__consumer_offsets"
            for p in parts
        ]
        return bool(ours) and all(len(p["isr"]) == BROKERS for p in ours)

    await wait_until(in_sync, timeout_s=timeout_s, what="every replica back in sync")
    return time.monotonic() - started


async def kill_and_restart(
    cluster: LocalStack, settings: Settings, load: Load, watch: TotalsWatch, node_id: int
) -> dict[str, object]:
    """SIGKILL a node while the load runs, keep it down ``AFTER_FAULT_S``, start it again,
    and wait until it is back in every ISR; the figures of that fault."""
    flow = asyncio.ensure_future(load.run_for(AFTER_FAULT_S + 2))
    await asyncio.sleep(2)
    killed_at = time.monotonic()
    trace(f"SIGKILL kafka-{node_id}")
    await asyncio.to_thread(cluster.kill_service, f"kafka-{node_id}")
    await flow
    trace(f"load acknowledged while kafka-{node_id} was down; starting it")
    began, ended = watch.longest_pause_span(killed_at, time.monotonic())
    restart_started = time.monotonic()
    flow = asyncio.ensure_future(load.run_for(3))
    await asyncio.to_thread(cluster.start_service, f"kafka-{node_id}")
    trace(f"kafka-{node_id} started")
    await flow
    restart_s = time.monotonic() - restart_started
    trace("load acknowledged after the restart; waiting for full ISR")
    isr_s = await wait_full_isr(settings)
    trace(f"full ISR after {isr_s:.1f} s")
    return {
        "longest_pause_after_kill_s": round(ended - began, 1),
        # When, counted from the kill, that pause began and ended; the node was started
        # again at node_down_s (a pause ending at node_down_s means "until it was back").
        "longest_pause_from_to_s": [round(began - killed_at, 1), round(ended - killed_at, 1)],
        "node_down_s": round(restart_started - killed_at, 1),
        "node_restart_s": round(restart_s, 1),
        "back_in_every_isr_s": round(isr_s, 1),
    }


async def start_cluster_worker(
    start_worker: StartWorker, settings: Settings, name: str
) -> WorkerProcess:
    """A worker of the cluster (not waited for)."""
    return start_worker(
        name,
        wait=False,
        kafka_bootstrap=settings.kafka_bootstrap,
        replication=settings.replication,
    )


# The tests --------------------------------------------------------------------------------
async def test_sigkill_of_partition_leader_then_active_controller_keeps_totals_exact(
    cluster: LocalStack, on_cluster: Settings, start_worker: StartWorker
) -> None:
    """SIGKILL of the busiest usage partition's leader, then of the active controller, under
    load through the SDK and the gateway: every acknowledged event counted exactly once."""
    s = on_cluster
    # The worker creates every topic itself, as on a new deployment (RELIABILITY.md, bug 21).
    worker = await start_cluster_worker(start_worker, s, "w1")
    await worker.wait_ready_async(90)
    trace("worker ready")
    started = time.monotonic()
    async with (
        UsageProducer(s) as producer,
        running_gateway(s, send_timeout_s=5.0, rate_limit=None) as client,
        TotalsWatch(s).running() as watch,
    ):
        load = Load(producer, client, s.topic_prefix)
        await load.run_for(5)
        partition, leader = await busiest_usage_partition(s)
        trace(f"usage partition {partition} is the busiest, led by kafka-{leader}")
        leader_fault = await kill_and_restart(cluster, s, load, watch, leader)
        controller = await asyncio.to_thread(cluster.active_controller)
        assert controller is not None, "no node knows the quorum's leader"
        trace(f"kafka-{controller} is the active controller")
        controller_fault = await kill_and_restart(cluster, s, load, watch, controller)
        await load.run_for(2)
        trace(f"load done: {len(load.sent)} events acknowledged")
    last_ack = time.monotonic()
    expected = Expected.of(load.sent)
    await wait_for_totals(s, expected, 120, [worker])
    trace("Redis exact")
    record_figures(
        "cluster_sigkill_leader_and_controller",
        brokers=BROKERS,
        replication=cluster.replication,
        events_sent=len(load.sent),
        events_counted=expected.events,
        duplicates_counted=0,
        lost=0,
        events_resent=load.resent,
        http_statuses=dict(load.statuses),
        usage_partition=partition,
        leader_killed=leader,
        leader_fault=leader_fault,
        controller_killed=controller,
        controller_fault=controller_fault,
        exact_after_last_ack_s=round(time.monotonic() - last_ack, 1),
        duration_s=round(time.monotonic() - started, 1),
    )


async def test_workers_scaled_one_three_one_under_load_stay_exact(
    cluster: LocalStack, on_cluster: Settings, start_worker: StartWorker
) -> None:
    """1 -> 3 -> 1 workers while events flow (leaving by SIGTERM and SIGKILL): exact after
    each step; the longest pause in the totals of each step is recorded."""
    s = on_cluster
    # The worker creates every topic itself, as on a new deployment (RELIABILITY.md, bug 21).
    w1 = await start_cluster_worker(start_worker, s, "w1")
    await w1.wait_ready_async(90)
    steps: list[dict[str, object]] = []
    async with (
        UsageProducer(s) as producer,
        running_gateway(s, send_timeout_s=5.0, rate_limit=None) as client,
        TotalsWatch(s).running() as watch,
    ):
        load = Load(producer, client, s.topic_prefix)

        async def step(name: str, seconds: float, change: Callable[[], Any] | None) -> None:
            trace(f"step {name}")
            began = time.monotonic()
            flow = asyncio.ensure_future(load.run_for(seconds))
            if change is not None:
                await change()
            await flow
            pause = watch.longest_pause(began, time.monotonic())
            workers = [w for w in (w1, *extra) if w.alive()]
            trace(f"step {name}: load done, waiting for Redis")
            exact_s = await wait_for_totals(s, Expected.of(load.sent), 120, workers)
            steps.append(
                {
                    "step": name,
                    "workers": len(workers),
                    "events_sent": len(load.sent),
                    "longest_pause_s": round(pause, 1),
                    "exact_after_load_s": round(exact_s, 1),
                }
            )

        extra: list[WorkerProcess] = []

        async def scale_up() -> None:
            extra.extend([await start_cluster_worker(start_worker, s, n) for n in ("w2", "w3")])
            await asyncio.gather(*(w.wait_ready_async(90) for w in extra))

        async def scale_down() -> None:
            await asyncio.sleep(2)
            await asyncio.to_thread(extra[0].stop)  # SIGTERM: leaves the group cleanly
            await asyncio.to_thread(extra[1].kill)  # SIGKILL: found out by the session timeout

        await step("1 worker", 5, None)
        await step("1 -> 3 workers", 12, scale_up)
        await step("3 -> 1 worker (SIGTERM w2, SIGKILL w3)", 12, scale_down)
    expected = Expected.of(load.sent)
    record_figures(
        "cluster_workers_scaled_1_3_1",
        brokers=BROKERS,
        events_sent=len(load.sent),
        events_counted=expected.events,
        duplicates_counted=0,
        lost=0,
        events_resent=load.resent,
        http_statuses=dict(load.statuses),
        steps=steps,
    )
