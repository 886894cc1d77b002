"""Produce-to-Redis latency at a steady event rate.

A producer sends ``rate`` events/s in ticks of ``tick_ms`` (one explicit batch per
partition per tick) to a fresh usage topic that one worker consumes; a sampler polls
``<redis_prefix>:total:<week>`` every 10 ms. Tick *i* counts as visible when the week's
total reaches the cumulative tokens of ticks 0..i; its latency is that moment minus the
moment the tick was handed to the producer. Event time is the wall clock, so every event
lands in the current ISO week (or the next one, when the run crosses Monday 00:00 UTC).
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

from aggregations.weeks import week_id
from bench.dataset import model_ids, zipf_cum_weights
from bench.figures import Latency, Profile
from bench.procstats import CpuMeter
from bench.profiling import PySpy
from bench.progress import Progress, say
from bench.redis_check import delete_prefix, week_tokens
from bench.stats import percentile
from bench.workers import BenchWorker
from streams.settings import Settings
from streams.store.keys import RedisKeys
from streams.topics import ensure_topics

SAMPLE_S = 0.01


class TickSource:
    """Encoded events of one tick, with their token sum."""

    def __init__(self, per_tick: int, partitions: int, seed: int = 11) -> None:
        self.per_tick = per_tick
        self.partitions = partitions
        self.rng = random.Random(seed)
        self.models = model_ids(300)
        self.cum = zipf_cum_weights(len(self.models), 1.1)
        self.serial = 0

    def tick(self, now_ms: int) -> tuple[dict[int, list[tuple[bytes, bytes]]], int, str]:
        """(records by partition, tokens, week) of one tick stamped ``now_ms``."""
        rng = self.rng
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        tokens = 0
        for model in rng.choices(self.models, cum_weights=self.cum, k=self.per_tick):
            self.serial += 1
            event_id = f"lat-{self.serial:012d}-{rng.getrandbits(48):012x}"
            prompt = 50 + int(rng.random() * 3000)
            completion = 10 + int(rng.random() * 800)
            tokens += prompt + completion
            value = orjson.dumps(
                {
                    "event_id": event_id,
                    "ts": now_ms,
                    "model": model,
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                }
            )
            key = event_id.encode()
            by_partition.setdefault(zlib.crc32(key) % self.partitions, []).append((key, value))
        return by_partition, tokens, week_id(now_ms)


async def _send_tick(
    producer: AIOKafkaProducer, topic: str, records: dict[int, list[tuple[bytes, bytes]]]
) -> list[asyncio.Future[Any]]:
    futures = []
    for partition, items in records.items():
        batch = producer.create_batch()
        for key, value in items:
            if batch.append(key=key, value=value, timestamp=None) is None:
                batch.close()
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        batch.close()
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


async def run_latency(
    base: Settings,
    *,
    run_id: str,
    rate: int,
    seconds: float,
    tick_ms: int,
    partitions: int,
    log_dir: Path,
    profile_path: Path | None = None,
) -> tuple[Latency, Profile | None]:
    """Start one worker on a fresh prefix, warm it up, then measure at ``rate`` events/s.

    With ``profile_path``, py-spy samples the worker during the steady phase.
    """
    settings = base.replace(
        topic_prefix=run_id, app_id=run_id, redis_prefix=run_id, partitions=partitions
    )
    await ensure_topics(settings)
    keys = RedisKeys(settings.redis_prefix)
    client = aioredis.from_url(settings.redis_url)
    worker = BenchWorker(settings, f"{run_id}-w0", log_dir).start()
    producer = AIOKafkaProducer(
        **settings.kafka_client_options(), acks="all", linger_ms=5, max_batch_size=512 * 1024
    )
    per_tick = max(1, rate * tick_ms // 1000)
    source = TickSource(per_tick, partitions)
    topic = settings.usage_topic
    try:
        await worker.wait_ready_async()
        await producer.start()
        weeks: set[str] = set()

        async def visible_total() -> int:
            return sum((await week_tokens(client, keys, sorted(weeks))).values())

        # Warm-up: two seconds of traffic, until Redis shows it (group joined, agent running).
        warm_tokens = 0
        for _ in range(2000 // tick_ms):
            records, tokens, week = source.tick(int(time.time() * 1000))
            weeks.add(week)
            warm_tokens += tokens
            await asyncio.gather(*await _send_tick(producer, topic, records))
        deadline = time.monotonic() + 120
        while await visible_total() < warm_tokens:
            if time.monotonic() > deadline or not worker.alive():
                raise RuntimeError(f"warm-up never reached Redis; see {worker.log_path}")
            await asyncio.sleep(0.1)
        baseline = await visible_total()

        ticks = int(seconds * 1000 // tick_ms)
        sent_at: list[float] = []
        cumulative: list[int] = []
        visible_at: list[float] = []
        producing = True

        async def sampler() -> None:
            while producing or len(visible_at) < len(cumulative):
                total = await visible_total()
                now = time.monotonic()
                while len(visible_at) < len(cumulative) and total >= cumulative[len(visible_at)]:
                    visible_at.append(now)
                if not producing and now > drain_deadline:
                    return
                await asyncio.sleep(SAMPLE_S)

        drain_deadline = float("inf")
        sampling = asyncio.create_task(sampler())
        spy = PySpy(worker.pid, profile_path).start() if profile_path is not None else None
        cpu = CpuMeter([worker.pid]).start()
        progress = Progress(f"latency at {rate:,}/s", ticks * per_tick)
        pending: list[asyncio.Future[Any]] = []
        running = baseline
        started = time.monotonic()
        for i in range(ticks):
            due = started + i * tick_ms / 1000
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            records, tokens, week = source.tick(int(time.time() * 1000))
            weeks.add(week)
            running += tokens
            sent_at.append(time.monotonic())
            cumulative.append(running)
            pending.extend(await _send_tick(producer, topic, records))
            if len(pending) > 400:
                await asyncio.gather(*pending)
                pending.clear()
            progress.update((i + 1) * per_tick)
        await asyncio.gather(*pending)
        produced_s = time.monotonic() - started
        progress.done(ticks * per_tick)
        producing = False
        drain_deadline = time.monotonic() + 60
        await sampling
        cpu.stop()
        profile = spy.stop() if spy is not None else None
        latencies = [v - s for v, s in zip(visible_at, sent_at, strict=False)]
        result = Latency(
            target_rate=rate,
            achieved_rate=ticks * per_tick / produced_s,
            seconds=produced_s,
            ticks=ticks,
            tick_ms=tick_ms,
            p50_s=percentile(latencies, 0.50),
            p90_s=percentile(latencies, 0.90),
            p99_s=percentile(latencies, 0.99),
            max_s=max(latencies) if latencies else float("nan"),
            unseen_ticks=ticks - len(latencies),
            worker_cpu_pct=cpu.process_cpu_pct,
            machine_cpu_pct=cpu.machine_cpu_pct,
        )
        say(
            f"  latency: p50 {result.p50_s:.3f} s, p99 {result.p99_s:.3f} s "
            f"at {result.achieved_rate:,.0f} events/s"
        )
        return result, profile
    finally:
        await producer.stop()
        await asyncio.to_thread(worker.stop)
        await delete_prefix(client, settings.redis_prefix)
        await client.aclose()
