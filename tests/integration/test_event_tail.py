"""EventTail's backlog: the latest N events over all partitions, in time order."""

from __future__ import annotations

import orjson
from aiokafka import AIOKafkaProducer

from streams.sdk.tail import EventTail
from streams.settings import Settings
from streams.topics import ensure_topics

T0 = 1_790_000_000_000


async def test_backlog_is_the_latest_n_in_time_order_then_live_events(settings: Settings) -> None:
    """20 events spread over 4 partitions of both topics: backlog=3 gives the 3 latest, oldest
    first (it gave up to 3 per partition, out of order), then what is published next."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(**settings.kafka_client_options(), acks="all")
    await producer.start()
    try:
        for i in range(20):
            topic = settings.rankings_topic if i % 3 else settings.alerts_topic
            event = {"id": f"e{i}", "type": "alert", "week": "2026-W47", "n": i}
            await producer.send_and_wait(
                topic, orjson.dumps(event), partition=i % 4, timestamp_ms=T0 + i * 1000
            )
        async with EventTail(settings, backlog=3) as tail:
            first = await tail.next_batch(timeout_ms=2000)
            assert [e["n"] for e in first] == [17, 18, 19]
            live = {"id": "live", "type": "alert", "week": "2026-W47", "n": 20}
            await producer.send_and_wait(
                settings.alerts_topic, orjson.dumps(live), partition=2, timestamp_ms=T0 + 30_000
            )
            seen: list[int] = []
            for _ in range(20):
                seen += [e["n"] for e in await tail.next_batch(timeout_ms=500)]
                if seen:
                    break
            assert seen == [20]
    finally:
        await producer.stop()
