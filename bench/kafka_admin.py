"""Topic housekeeping for the benchmark: create, delete and wait, read end offsets."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.settings import Settings

DAY_MS = 86_400_000


async def _admin(settings: Settings) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    return admin


async def list_topics(settings: Settings) -> list[str]:
    """Every topic of the broker."""
    admin = await _admin(settings)
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


async def create_topic(
    settings: Settings, name: str, partitions: int, retention_ms: int = DAY_MS
) -> None:
    """Create ``name`` (replication 1), retrying while a deletion of the same name finishes."""
    admin = await _admin(settings)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(TopicAlreadyExistsError):
                response = await admin.create_topics(
                    [
                        NewTopic(
                            name,
                            partitions,
                            settings.replication,
                            topic_configs={"retention.ms": str(retention_ms)},
                        )
                    ]
                )
                errors = {t[0]: t[1] for t in getattr(response, "topic_errors", [])}
                code = errors.get(name, 0)
                if code in (0, TopicAlreadyExistsError.errno):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"creating topic {name} failed with error {code}")
                await asyncio.sleep(0.5)
                continue
            break
    finally:
        await admin.close()


async def delete_topics(
    settings: Settings, select: Callable[[str], bool], timeout_s: float = 60.0
) -> list[str]:
    """Delete every topic for which ``select(name)`` is true and wait until they are gone."""
    admin = await _admin(settings)
    try:
        names = [t for t in await admin.list_topics() if select(t)]
        if not names:
            return []
        await admin.delete_topics(names)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            left = set(names) & set(await admin.list_topics())
            if not left:
                break
            await asyncio.sleep(0.3)
        return names
    finally:
        await admin.close()


async def delete_topics_named(settings: Settings, names: Iterable[str]) -> list[str]:
    """Delete exactly these topics (those that exist) and wait until they are gone."""
    wanted = set(names)
    return await delete_topics(settings, wanted.__contains__)


async def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """Partition -> end offset (the next offset to be written) of ``topic``."""
    consumer = AIOKafkaConsumer(**settings.kafka_client_options(), enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()
