"""The SDK's subscribe helper yields each ranking change or alert once."""

from __future__ import annotations

import asyncio

import orjson
from aiokafka import AIOKafkaProducer

from streams.sdk.subscriber import subscribe
from streams.settings import Settings
from streams.topics import ensure_topics


async def test_subscribe_drops_republished_ids(settings: Settings) -> None:
    """An event published twice with the same id (a leader restart) is yielded once."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(**settings.kafka_client_options())
    await producer.start()
    try:
        for event_id, topic in (
            ("a", settings.rankings_topic),
            ("a", settings.rankings_topic),
            ("b", settings.alerts_topic),
        ):
            event = {"id": event_id, "type": "test"}
            await producer.send_and_wait(topic, orjson.dumps(event), key=event_id.encode())
    finally:
        await producer.stop()

    async def first_events() -> list[str]:
        ids: list[str] = []
        async for event in subscribe(settings, from_beginning=True):
            ids.append(event["id"])
            if len(ids) == 2:
                break
        return ids

    ids = await asyncio.wait_for(first_events(), 30)
    assert sorted(ids) == ["a", "b"]
