"""A stale table value written to the changelog after the owner's (a "zombie" write).

A worker stalled past its session timeout can fold a record it fetched before losing its
partitions and write an old state of a key to the changelog after the new owner's newer
state. This test writes such a record itself (an older changelog record of the week total,
produced again at the end of the changelog), kills the worker, and checks that the worker
recovering the table keeps the newest state, so the totals stay exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
from aiokafka import AIOKafkaProducer

from aggregations.events import UsageEvent
from aggregations.totals import table_key
from streams.dev.workerproc import WorkerProcess
from streams.sdk.producer import UsageProducer
from streams.settings import Settings
from streams.topics import ensure_topics
from tests.integration.kafka_read import read_topic
from tests.integration.private_stack import (
    Expected,
    delete_redis_keys,
    make_events,
    wait_for_totals,
)

StartWorker = Callable[..., WorkerProcess]


async def test_recovery_keeps_the_newest_state_despite_a_stale_changelog_record(
    settings: Settings, start_worker: StartWorker
) -> None:
    """An old state re-written after the newest one does not come back at recovery."""
    s = settings.replace(block_size=100, flush_interval_ms=200)
    await ensure_topics(s)
    w1 = start_worker("w1", block_size=100, flush_interval_ms=200)
    events: list[UsageEvent] = []
    async with UsageProducer(s) as producer:
        for batch in range(6):  # several flushes: the total key gets several states
            chunk = make_events("stale", batch * 150, 150)
            await producer.send_many(chunk)
            events.extend(chunk)
            await asyncio.sleep(0.6)
    expected = Expected.of(events)
    await wait_for_totals(s, expected, 90, [w1])

    week = next(iter(expected.weeks))
    key = table_key("total", week, "all")
    changelog = f"{s.app_id}-weekly-changelog"
    records = [r for r in await read_topic(s, changelog) if r.key and orjson.loads(r.key) == key]
    assert len(records) >= 3, f"only {len(records)} states of {key} in {changelog}"
    old = records[0]
    assert orjson.loads(old.value)["c"] != orjson.loads(records[-1].value)["c"]

    producer = AIOKafkaProducer(**s.kafka_client_options())
    await producer.start()
    try:  # what a zombie worker would write: an old state, after the newest one
        await producer.send_and_wait(changelog, old.value, key=old.key, partition=old.partition)
    finally:
        await producer.stop()

    w1.kill()
    # Empty this test's Redis keys: what Redis shows next is what the new worker recovered.
    await delete_redis_keys(s.redis_url, s.redis_prefix)
    w2 = start_worker("w2", block_size=100, flush_interval_ms=200)
    await wait_for_totals(s, expected, 60, [w2])
