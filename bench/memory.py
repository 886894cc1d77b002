"""Worker memory with a large state, and the cost of Redis snapshots as state grows.

Memory: one worker on a fresh prefix is fed one small event per (model, week) for
``models`` x ``weeks`` weeks (oldest week first, so nothing is late), until Redis shows
every week's total; then its RSS and peak RSS (``VmHWM``) are read from ``/proc``.

Snapshot cost: :meth:`streams.worker.snapshots.SnapshotWriter.write` timed in this process for
growing numbers of model keys (two daily buckets each, the shape the fold produces), as a
full rewrite after a rebalance or a Redis restart does it.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from aggregations.weeks import DAY_MS, WEEK_MS, day_id, week_id, week_start_ms
from bench.figures import Memory, SnapshotCost
from bench.progress import Progress, say
from bench.redis_check import cell_mismatches, delete_prefix, week_tokens
from bench.workers import BenchWorker
from streams.settings import Settings
from streams.store.keys import RedisKeys
from streams.topics import ensure_topics
from streams.worker.snapshots import SnapshotWriter

VENDORS = 100


def memory_model(k: int) -> str:
    """Synthetic model id number ``k`` (not in the catalog: vendor from the prefix)."""
    return f"mem-vendor-{k % VENDORS}/model-{k}"


def week_times(weeks: int, now_ms: int) -> list[int]:
    """One event time per week, oldest first: mid-week, at most a minute ago."""
    current = week_start_ms(week_id(now_ms))
    return [
        min(current - back * WEEK_MS + WEEK_MS // 2, now_ms - 60_000)
        for back in range(weeks - 1, -1, -1)
    ]


async def _produce_cells(
    settings: Settings, models: int, times: list[int]
) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    producer = AIOKafkaProducer(
        **settings.kafka_client_options(), acks=1, linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    week_totals: dict[str, int] = {}
    cells: dict[tuple[str, str], int] = {}
    total = models * len(times)
    progress = Progress("memory dataset", total)
    sent = 0
    partitions = settings.partitions
    futures: list[asyncio.Future[Any]] = []
    try:
        for ts in times:
            week = week_id(ts)
            batches: dict[int, Any] = {}
            for k in range(models):
                model = memory_model(k)
                event_id = f"mem-{week}-{k}"
                tokens = 1 + k % 7
                value = orjson.dumps(
                    {
                        "event_id": event_id,
                        "ts": ts,
                        "model": model,
                        "prompt_tokens": tokens,
                        "completion_tokens": 1,
                    }
                )
                week_totals[week] = week_totals.get(week, 0) + tokens + 1
                cells[(week, model)] = tokens + 1
                key = event_id.encode()
                partition = zlib.crc32(key) % partitions
                batch = batches.get(partition)
                if batch is None:
                    batch = batches[partition] = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    batch.close()
                    futures.append(await producer.send_batch(batch, settings.usage_topic,
                                                             partition=partition))  # fmt: skip
                    batch = batches[partition] = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            for partition, batch in batches.items():
                batch.close()
                futures.append(
                    await producer.send_batch(batch, settings.usage_topic, partition=partition)
                )
            await asyncio.gather(*futures)
            futures.clear()
            sent += models
            progress.update(sent)
    finally:
        await producer.stop()
    progress.done(sent)
    return week_totals, cells


async def run_memory(
    base: Settings, *, run_id: str, models: int, weeks: int, partitions: int, log_dir: Path
) -> Memory:
    """Peak RSS of one worker holding ``models`` x ``weeks`` model-week keys."""
    settings = base.replace(
        topic_prefix=run_id, app_id=run_id, redis_prefix=run_id, partitions=partitions
    )
    await ensure_topics(settings)
    keys = RedisKeys(settings.redis_prefix)
    client = aioredis.from_url(settings.redis_url)
    worker = BenchWorker(settings, f"{run_id}-w0", log_dir).start()
    result = Memory(models, weeks, models * weeks, 0, 0.0, 0.0, 0.0, 0.0)
    try:
        await worker.wait_ready_async()
        await asyncio.sleep(2)
        result.baseline_rss_mib = worker.rss_mib()
        started = time.monotonic()
        week_totals, cells = await _produce_cells(
            settings, models, week_times(weeks, int(time.time() * 1000))
        )
        progress = Progress("memory: worker reflecting", len(week_totals))
        deadline = time.monotonic() + 600
        # Week totals first (cheap); then a sample of (week, model) scores, which other table
        # partitions may write a snapshot tick later than the totals.
        sample = dict(random.Random(3).sample(sorted(cells.items()), min(5000, len(cells))))
        while True:
            got = await week_tokens(client, keys, week_totals)
            matching = sum(1 for w, t in week_totals.items() if got[w] == t)
            progress.update(matching, f"RSS {worker.rss_mib():,.0f} MiB")
            if matching == len(week_totals) and await cell_mismatches(client, keys, sample) == 0:
                result.exact = True
                break
            if time.monotonic() > deadline or not worker.alive():
                result.error = f"Redis did not reflect the state; see {worker.log_path}"
                break
            await asyncio.sleep(0.25)
        progress.done(matching)
        result.load_seconds = time.monotonic() - started
        await asyncio.sleep(3)  # a few snapshot and ranker ticks over the full state
        result.rss_mib = worker.rss_mib()
        result.peak_rss_mib = worker.peak_rss_mib()
        result.table_keys = models * weeks + (VENDORS + 1 + 1) * weeks
        say(
            f"  memory: RSS {result.rss_mib:,.0f} MiB, peak {result.peak_rss_mib:,.0f} MiB "
            f"for {models:,} models x {weeks} weeks"
        )
        return result
    finally:
        await asyncio.to_thread(worker.stop)
        await delete_prefix(client, settings.redis_prefix)
        await client.aclose()


def snapshot_values(count: int, now_ms: int) -> list[tuple[str, dict[str, Any]]]:
    """``count`` model table values over 10 weeks, two daily buckets each."""
    items = []
    weeks = 10
    per_week = max(1, count // weeks)
    for i in range(count):
        week_no, model_no = divmod(i, per_week)
        ts = now_ms - (week_no % weeks) * WEEK_MS
        week = week_id(ts)
        day1, day2 = day_id(ts), day_id(ts - DAY_MS)
        counts = [1000 + i, 800 + i, 200, 3, 0]
        items.append(
            (
                f"model:{week}:snap-vendor-{model_no % 50}/model-{model_no}",
                {
                    "c": counts,
                    "d": {day1: [600, 500, 100, 2, 0], day2: [400 + i, 300 + i, 100, 1, 0]},
                    "ts": ts,
                    "m": [f"Model {model_no}", f"Vendor {model_no % 50}", "ZZ"],
                },
            )
        )
    return items


async def run_snapshot_cost(base: Settings, *, run_id: str, sizes: list[int]) -> list[SnapshotCost]:
    """Time one :meth:`SnapshotWriter.write` of each size against the real Redis."""
    client = aioredis.from_url(base.redis_url)
    out: list[SnapshotCost] = []
    try:
        now_ms = int(time.time() * 1000)
        for size in sizes:
            prefix = f"{run_id}-{size}"
            writer = SnapshotWriter(client, RedisKeys(prefix), f"bench-{size}")
            items = snapshot_values(size, now_ms)
            started = time.perf_counter()
            written = await writer.write(items)
            seconds = time.perf_counter() - started
            # leaderboard ZADD + member HSET + one ZADD per day, per key
            out.append(SnapshotCost(keys=written, seconds=seconds, redis_commands=4 * written))
            say(f"  snapshot of {size:,} keys: {seconds:.2f} s ({written / seconds:,.0f} keys/s)")
            await delete_prefix(client, prefix)
    finally:
        await client.aclose()
    return out
