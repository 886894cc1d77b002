"""A rejected event is counted once by the dead-letter metric, however often rebalances make
its block replay (and its dead letter be sent again)."""

from __future__ import annotations

from collections.abc import Callable

from aiokafka import AIOKafkaProducer

from streams.settings import Settings
from streams.topics import ensure_topics
from tests.integration.kafka_read import read_topic
from tests.integration.private_stack import wait_until, worker_metric
from tests.integration.processes import WorkerProcess

METRIC = "tokenboard_events_dead_lettered_total"


async def test_rebalances_do_not_recount_dead_letters(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """10 broken records, then a second worker joins and leaves twice: the first worker
    replays its open blocks and sends their dead letters again (readers dedup by the source
    header), but its metric stays at 10 (it counted every replay before)."""
    await ensure_topics(settings)
    w1 = start_worker("w1")
    producer = AIOKafkaProducer(**settings.kafka_client_options(), acks="all")
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(
                settings.usage_topic, b"{broken " + str(i).encode(), partition=i % 4
            )
    finally:
        await producer.stop()

    async def counted(n: float) -> bool:
        return worker_metric(w1, METRIC) == n

    await wait_until(lambda: counted(10), timeout_s=60, what="10 dead letters counted")
    for round_ in range(2):
        w2 = start_worker(f"w2-{round_}")
        w2.stop()

    async def replayed() -> bool:
        return len(await read_topic(settings, settings.dead_letter_topic)) > 10

    await wait_until(replayed, timeout_s=90, what="a replay sent dead letters again")
    records = await read_topic(settings, settings.dead_letter_topic)
    assert len({dict(r.headers)["source"] for r in records}) == 10
    assert worker_metric(w1, METRIC) == 10
