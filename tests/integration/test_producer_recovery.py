"""The SDK producer replaces itself after a sequence error, so the caller's retry succeeds."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka.errors import OutOfOrderSequenceNumber

from streams.sdk.partitioner import partition_of
from streams.sdk.producer import UsageProducer
from streams.settings import Settings
from streams.topics import ensure_topics
from tests.integration.kafka_read import read_topic, read_usage_events
from tests.integration.private_stack import make_events


async def test_sequence_error_replaces_the_producer_and_the_retry_is_stored(
    settings: Settings,
) -> None:
    """After OutOfOrderSequenceNumber (a broker that lost the producer's state, as after a
    long outage) the batch is re-sent through a new producer and every event is stored."""
    await ensure_topics(settings)
    batch = make_events("seq", 0, 50)
    async with UsageProducer(settings) as producer:
        first = producer._producer
        failed: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        failed.set_exception(OutOfOrderSequenceNumber())
        with pytest.raises(OutOfOrderSequenceNumber):
            await producer.acknowledged([failed])
        assert producer._producer is not first, "the producer was not replaced"
        assert await producer.send_many(batch) == len(batch)  # the caller's retry
    stored = await read_usage_events(settings)
    assert {e.event_id for e in batch} <= set(stored)


@pytest.mark.parametrize("yields_before_cancel", [1, 3, 10, 30])
async def test_a_caller_cancelled_during_the_replacement_leaves_a_working_producer(
    settings: Settings, yields_before_cancel: int
) -> None:
    """Callers bound their sends with timeouts (the gateway's send_timeout_s, wait_for around
    send_many), so the cancellation can land while the producer replaces itself; the next
    send must still go through, whatever point the replacement had reached."""
    await ensure_topics(settings)
    batch = make_events(f"seq-cancel-{yields_before_cancel}", 0, 20)
    async with UsageProducer(settings) as producer:
        failed: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        failed.set_exception(OutOfOrderSequenceNumber())
        caller = asyncio.ensure_future(producer.acknowledged([failed]))
        for _ in range(yields_before_cancel):
            await asyncio.sleep(0)
        caller.cancel()
        with pytest.raises((asyncio.CancelledError, OutOfOrderSequenceNumber)):
            await caller
        assert await asyncio.wait_for(producer.send_many(batch), 60) == len(batch)
    stored = await read_usage_events(settings)
    assert {e.event_id for e in batch} <= set(stored)


async def test_send_many_resends_its_batch_through_the_new_producer(settings: Settings) -> None:
    """A batch whose sends fail with a sequence error is sent once more, and all is stored."""
    await ensure_topics(settings)
    batch = make_events("seq-many", 0, 20)
    loop = asyncio.get_running_loop()
    async with UsageProducer(settings) as producer:
        first = producer._producer
        real_send = producer.send_encoded
        calls = 0

        async def first_batch_fails(
            records: Sequence[tuple[str, bytes]],
        ) -> list[asyncio.Future[Any]]:
            nonlocal calls
            calls += 1
            if calls == 1:
                failed: asyncio.Future[Any] = loop.create_future()
                failed.set_exception(OutOfOrderSequenceNumber())
                return [failed]
            return await real_send(records)

        producer.send_encoded = first_batch_fails  # type: ignore[method-assign]
        assert await producer.send_many(batch) == len(batch)
        assert calls == 2
        assert producer._producer is not first
    stored = await read_usage_events(settings)
    assert {e.event_id for e in batch} <= set(stored)


async def test_send_many_puts_each_event_where_the_default_partitioner_would(
    settings: Settings,
) -> None:
    """send_many's own per-partition batches (several per partition: more than a batch's
    512 KiB each) store every event once, on murmur2(event id) % partitions, like send()."""
    await ensure_topics(settings)
    batch = make_events("batched", 0, 20_000)
    async with UsageProducer(settings) as producer:
        assert await producer.send_many(batch) == len(batch)
        await producer.send(make_events("single", 0, 1)[0])
    records = await read_topic(settings, settings.usage_topic)
    ids = [record.key.decode() for record in records if record.key is not None]
    assert sorted(ids) == sorted([e.event_id for e in batch] + ["single-0"])
    for record in records:
        assert record.key is not None
        assert record.partition == partition_of(record.key, settings.partitions)
    per_partition = max(
        sum(len(r.value or b"") for r in records if r.partition == p)
        for p in range(settings.partitions)
    )
    assert per_partition > 512 * 1024, "no partition needed a second batch"
