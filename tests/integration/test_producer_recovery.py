"""The SDK producer replaces itself after a sequence error, so the caller's retry succeeds."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import OutOfOrderSequenceNumber

from aggregations.events import UsageEvent
from streams.sdk.producer import UsageProducer
from streams.settings import Settings
from streams.topics import ensure_topics
from tests.integration.kafka_read import read_usage_events
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


async def test_send_many_resends_its_batch_through_the_new_producer(settings: Settings) -> None:
    """A batch whose sends fail with a sequence error is sent once more, and all is stored."""
    await ensure_topics(settings)
    batch = make_events("seq-many", 0, 20)
    loop = asyncio.get_running_loop()
    async with UsageProducer(settings) as producer:
        first = producer._producer
        real_send = producer.send
        calls = 0

        async def first_batch_fails(event: UsageEvent) -> asyncio.Future[object]:
            nonlocal calls
            calls += 1
            if calls <= len(batch):
                failed: asyncio.Future[object] = loop.create_future()
                failed.set_exception(OutOfOrderSequenceNumber())
                return failed
            return await real_send(event)

        producer.send = first_batch_fails  # type: ignore[method-assign]
        assert await producer.send_many(batch) == len(batch)
        assert calls == 2 * len(batch)
        assert producer._producer is not first
    stored = await read_usage_events(settings)
    assert {e.event_id for e in batch} <= set(stored)
