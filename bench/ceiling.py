"""The ceiling: a plain aiokafka ``getmany`` loop that only decodes each event with orjson.

Same fetch settings as tokenboard's pre-aggregator (streams/worker/preaggregator.py), its own
consumer group, run in the benchmark process itself (nothing else runs meanwhile). The
clock starts at the first fetched batch, so group join and metadata are excluded.
"""

from __future__ import annotations

import os
import time

import orjson
from aiokafka import AIOKafkaConsumer

from bench.dataset import Expected
from bench.figures import Throughput
from bench.procstats import CpuMeter
from bench.progress import Progress, say
from streams.settings import Settings


async def run_ceiling(settings: Settings, expected: Expected, group: str) -> Throughput:
    """Consume the whole dataset once, decoding every value; returns the rate."""
    consumer = AIOKafkaConsumer(
        expected.topic,
        **settings.kafka_client_options(),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    started = time.monotonic()
    await consumer.start()
    progress = Progress("ceiling (getmany + orjson)", expected.events)
    count = 0
    decoded = 0
    first: float | None = None
    loads = orjson.loads

    cpu = CpuMeter([os.getpid()])
    try:
        while count < expected.events:
            batches = await consumer.getmany(timeout_ms=1000, max_records=20_000)
            if first is None and batches:
                first = time.monotonic()
                cpu.start()
            for records in batches.values():
                for record in records:
                    if loads(record.value):
                        decoded += 1
                count += len(records)
            progress.update(count)
            if time.monotonic() - started > 600:
                break
        done = time.monotonic()
        cpu.stop()
    finally:
        await consumer.stop()
    progress.done(count)
    start = first if first is not None else done
    result = Throughput(
        name="ceiling: aiokafka getmany + orjson.loads",
        events=count,
        seconds=done - start,
        complete=count >= expected.events,
        startup_s=start - started,
        cpu_pct=cpu.process_cpu_pct,
        machine_cpu_pct=cpu.machine_cpu_pct,
        exact=decoded == expected.events,
        notes=["runs inside the benchmark process: no RSS of its own"],
    )
    say(f"  ceiling: {result.rate:,.0f} events/s")
    return result
