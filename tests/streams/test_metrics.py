"""Where the operational metrics of issue 18 are measured: latency to Redis, snapshot age,
ranker ticks, worker readiness.

The snapshot writer runs against a private redis-server on a Unix socket of the test's own
folder (no network, no shared state); the ranker and the worker are driven one step with
the step they wait on replaced.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from streams import metrics
from streams.leader.ranker import Ranker
from streams.leader.state_log import RankerStateLog
from streams.leader.state_mirror import RedisStateLost
from streams.settings import Settings
from streams.store.keys import RedisKeys
from streams.worker.fold import PendingChanges
from streams.worker.snapshot_job import SnapshotJob
from streams.worker.snapshots import SnapshotWriter
from streams.worker.worker import Worker

KEY = "model:2026-W47:vendor/model-1"
DAY = "2026-11-16"


def sample(name: str, **labels: str) -> float:
    """The current value of one sample of the default registry (0 when absent)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def redis_socket(tmp_path: Path) -> Iterator[Path]:
    """A private redis-server listening on a Unix socket only, stopped afterwards."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: run `make setup`"
    socket = tmp_path / "redis.sock"
    arguments = ["--port", "0", "--unixsocket", str(socket), "--unixsocketperm", "700"]
    arguments += ["--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    server = subprocess.Popen(
        [binary, *arguments],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not socket.exists():
            assert server.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.01)
        yield socket
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
async def redis_client(redis_socket: Path) -> AsyncIterator[aioredis.Redis]:
    """A client of the private redis-server."""
    client = aioredis.Redis(unix_socket_path=str(redis_socket))
    await client.ping()
    yield client
    await client.aclose()


def table_value(ts_ms: int) -> dict[str, Any]:
    """A table value whose newest event is at ``ts_ms``."""
    counts = [10, 6, 4, 1, 0]
    return {"c": counts, "d": {DAY: list(counts)}, "ts": ts_ms}


async def test_incremental_write_observes_the_latency_to_redis(
    redis_client: aioredis.Redis,
) -> None:
    """A write of what changed observes now minus its newest event time, once it is in Redis."""
    writer = SnapshotWriter(redis_client, RedisKeys("tbmetrics"), "w1")
    count = sample("tokenboard_redis_latency_seconds_count")
    total = sample("tokenboard_redis_latency_seconds_sum")
    value = table_value(int(time.time() * 1000) - 2000)
    assert await writer.write([(KEY, value)], changed_days={KEY: {DAY}}) == 1
    assert sample("tokenboard_redis_latency_seconds_count") == count + 1
    assert 2.0 <= sample("tokenboard_redis_latency_seconds_sum") - total < 60
    assert await redis_client.hget(f"tbmetrics:m:{KEY}", "tokens") == b"10"


async def test_full_rewrites_and_empty_writes_observe_nothing(
    redis_client: aioredis.Redis,
) -> None:
    """A full rewrite (old weeks too) and a write of nothing leave the latency alone; an event
    time ahead of the clock counts as 0, not negative."""
    writer = SnapshotWriter(redis_client, RedisKeys("tbmetrics"), "w1")
    count = sample("tokenboard_redis_latency_seconds_count")
    await writer.write([(KEY, table_value(int(time.time() * 1000) - 86_400_000))])
    await writer.write([], changed_days={})
    assert sample("tokenboard_redis_latency_seconds_count") == count
    zero = sample("tokenboard_redis_latency_seconds_bucket", le="0.1")
    future = table_value(int(time.time() * 1000) + 60_000)
    await writer.write([(KEY, future)], changed_days={KEY: {DAY}})
    assert sample("tokenboard_redis_latency_seconds_bucket", le="0.1") == zero + 1


def test_snapshot_age_is_read_when_scraped() -> None:
    """The snapshot age grows between writes even when no write runs (Redis down, a long
    rebalance): it is computed when /metrics is read, from the job's start before any write."""
    client = aioredis.Redis(unix_socket_path="/nonexistent")  # never connected
    job = SnapshotJob(
        cast(Any, None), Settings(), {}, {}, PendingChanges(), client, RedisKeys("tb"), "w1"
    )
    job._created_s = time.time() - 30
    assert 30 <= sample("tokenboard_snapshot_age_seconds") < 40
    job.writer.last_write_s = time.time() - 5
    assert 5 <= sample("tokenboard_snapshot_age_seconds") < 15


def make_ranker() -> Ranker:
    """A ranker whose Redis and Kafka clients are never used by these tests."""
    settings = Settings()

    async def publish(topic: str, event: dict[str, Any]) -> None:
        raise AssertionError("nothing is published here")

    client = aioredis.Redis(unix_socket_path="/nonexistent")
    return Ranker(settings, client, RedisKeys("tb"), publish, RankerStateLog(settings))


async def _synced() -> bool:
    return True


async def _waiting() -> bool:
    return False


async def _ranked(now: int) -> None:
    await asyncio.sleep(0.02)


async def _state_lost(now: int) -> None:
    raise RedisStateLost


async def _broken(now: int) -> None:
    raise RuntimeError("bug")


@pytest.mark.parametrize(
    ("sync", "pass_", "outcome"),
    [
        (_synced, _ranked, "ranked"),
        (_waiting, _broken, "waiting"),
        (_synced, _state_lost, "state_lost"),
        (_synced, _broken, "failed"),
    ],
)
async def test_ranker_ticks_are_counted_by_outcome_and_timed(
    sync: Any, pass_: Any, outcome: str
) -> None:
    """Every tick counts once under its outcome and is timed, an exception included (which
    still propagates to the job's guard)."""
    ranker = make_ranker()
    ranker.mirror.sync = sync  # type: ignore[method-assign]
    ranker._pass = pass_  # type: ignore[method-assign]
    ticks = sample("tokenboard_ranker_ticks_total", outcome=outcome)
    timed = sample("tokenboard_ranker_tick_seconds_count")
    seconds = sample("tokenboard_ranker_tick_seconds_sum")
    if outcome == "failed":
        with pytest.raises(RuntimeError):
            await ranker.tick()
    else:
        await ranker.tick()
    assert sample("tokenboard_ranker_ticks_total", outcome=outcome) == ticks + 1
    assert sample("tokenboard_ranker_tick_seconds_count") == timed + 1
    if outcome == "ranked":
        assert sample("tokenboard_ranker_tick_seconds_sum") - seconds >= 0.02


async def test_worker_ready_follows_readiness() -> None:
    """tokenboard_worker_ready turns 1 when the pre-aggregator is ready (what /readyz answers)."""
    metrics.WORKER_READY.set(0)
    ready = asyncio.Event()
    worker = cast(Worker, SimpleNamespace(pre=SimpleNamespace(ready=ready)))
    task = asyncio.ensure_future(Worker._report_ready(worker))
    await asyncio.sleep(0.01)
    assert sample("tokenboard_worker_ready") == 0
    ready.set()
    await asyncio.wait_for(task, 5)
    assert sample("tokenboard_worker_ready") == 1
    metrics.WORKER_READY.set(0)
