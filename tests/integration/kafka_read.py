"""Reading topics back from the real broker, for tests that check exactly what was produced."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from aggregations.events import UsageEvent, decode_event
from streams.settings import Settings

# Far enough ahead that no test event is ever "in the future" when read back.
_READ_NOW_MS = 253_402_300_799_999


async def read_topic(
    settings: Settings, topic: str, timeout_s: float = 10.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of a topic, from the beginning to its end offsets at the time of the call."""
    consumer = AIOKafkaConsumer(**settings.kafka_client_options(), enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {timeout_s} s")
            batch = await consumer.getmany(timeout_ms=500)
            for chunk in batch.values():
                records.extend(chunk)
        return records
    finally:
        await consumer.stop()


async def read_usage_events(settings: Settings) -> dict[str, UsageEvent]:
    """The usage topic as event_id -> decoded event; fails on a key that is not the event's id
    or on an id seen twice, so callers can compare it to what they sent with ``==``."""
    events: dict[str, UsageEvent] = {}
    for record in await read_topic(settings, settings.usage_topic):
        assert record.key is not None and record.value is not None
        event = decode_event(record.value, now_ms=_READ_NOW_MS)
        key = record.key.decode()
        assert key == event.event_id, f"record keyed {key!r} holds event {event.event_id!r}"
        assert key not in events, f"event {key!r} was produced twice"
        events[key] = event
    return events
