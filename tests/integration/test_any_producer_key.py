"""Exact counts whatever key a producer gives its records: none, the model, a random one."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer

from aggregations.events import UsageEvent, encode_event
from streams.settings import Settings
from streams.topics import ensure_topics
from tests.integration.private_stack import Expected, wait_for_totals, wait_until, worker_metric
from tests.integration.processes import WorkerProcess

MODELS = ["openai/gpt-5.1", "deepseek/deepseek-v4-flash", "qwen/qwen3-max"]
KEYS: dict[str, Callable[[UsageEvent], bytes | None]] = {
    "unkeyed": lambda event: None,
    "by_model": lambda event: event.model.encode(),
    "random": lambda event: uuid.uuid4().bytes,
}


@pytest.mark.parametrize("keying", sorted(KEYS))
async def test_resends_count_once_whatever_the_key(
    keying: str, settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """1,000 events plus 50 of them sent again, produced straight to the usage topic with
    no key, the model as key, or a random key: 100,000 tokens, not one more (47 of 50
    resends were counted twice when dedup only saw one partition)."""
    await ensure_topics(settings)
    worker = start_worker("w1")
    now = int(time.time() * 1000) - 60_000
    events = [UsageEvent(f"k-{keying}-{i}", now + i, MODELS[i % 3], 60, 40) for i in range(1000)]
    resent = random.Random(7).sample(events, 50)
    key = KEYS[keying]
    producer = AIOKafkaProducer(**settings.kafka_client_options(), acks="all")
    await producer.start()
    try:
        for event in [*events, *resent]:
            await producer.send(settings.usage_topic, encode_event(event), key=key(event))
        await producer.flush()
    finally:
        await producer.stop()
    expected = Expected.of(events)
    assert sum(expected.weeks.values()) == 100_000
    await wait_for_totals(settings, expected, 90, [worker])

    # Every record read, the rerouted copies too: nothing is still on its way to be counted.
    async def all_read() -> bool:
        consumed = worker_metric(worker, "tokenboard_events_consumed_total")
        rerouted = worker_metric(worker, "tokenboard_events_rerouted_total")
        return consumed == 1050 + rerouted

    await wait_until(all_read, timeout_s=60, what="every record and rerouted copy read")
    await wait_for_totals(settings, expected, 10, [worker])
    assert worker_metric(worker, "tokenboard_duplicates_dropped_total") == 50
