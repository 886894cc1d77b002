"""The foundation works: a real broker and a real Redis answer round trips."""

from __future__ import annotations

import asyncio

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.settings import Settings
from streams.topics import ensure_topics, topic_specs


async def test_kafka_produce_consume_and_redis_roundtrip(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    """A record produced to the real broker is consumed back and a Redis value reads back."""
    created = await ensure_topics(settings)
    assert set(created) == {t.name for t in topic_specs(settings)}
    producer = AIOKafkaProducer(**settings.kafka_client_options(), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(settings.usage_topic, orjson.dumps({"n": 1}), key=b"k1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        settings.usage_topic, **settings.kafka_client_options(), auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        batch = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    assert batch.key == b"k1"
    assert orjson.loads(batch.value) == {"n": 1}

    await redis_client.set(f"{settings.redis_prefix}:probe", "42")
    assert await redis_client.get(f"{settings.redis_prefix}:probe") == "42"


async def test_ensure_topics_is_idempotent(settings: Settings) -> None:
    """Creating the topics twice creates nothing the second time."""
    await ensure_topics(settings)
    assert await ensure_topics(settings) == []
