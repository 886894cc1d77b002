"""One producer with a skewed clock does not move the pipeline's clock (issue 17, item 7).

An event 20 h ahead is valid (the limit is a day) and counted in its own week, but the
watermark, which names the current week and drives retention and closing, stays within a
minute of the wall clock. aggregations/clock.py; the week boundary is tested there.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aggregations.clock import MAX_LEAD_MS
from aggregations.events import UsageEvent
from streams.dev.workerproc import WorkerProcess
from streams.sdk.producer import UsageProducer
from streams.settings import Settings
from streams.store.client import connect
from streams.store.keys import RedisKeys
from streams.store.state import read_state
from streams.topics import ensure_topics
from tests.integration.private_stack import Expected, wait_for_totals

StartWorker = Callable[..., WorkerProcess]
HOUR = 3_600_000


async def test_an_event_twenty_hours_ahead_does_not_move_the_watermark(
    settings: Settings, start_worker: StartWorker
) -> None:
    """Both events are counted; the watermark stays at most a minute ahead of the clock."""
    await ensure_topics(settings)
    worker = start_worker("w1")
    now = int(time.time() * 1000)
    events = [
        UsageEvent(event_id="honest", ts_ms=now - 60_000, model="openai/gpt-5.1",
                   prompt_tokens=100, completion_tokens=10),
        UsageEvent(event_id="skewed", ts_ms=now + 20 * HOUR, model="openai/gpt-5.1",
                   prompt_tokens=200, completion_tokens=20),
    ]  # fmt: skip
    async with UsageProducer(settings) as producer:
        await producer.send_many(events)
    await wait_for_totals(settings, Expected.of(events), 90, [worker])
    client = connect(settings)
    try:
        state = await read_state(client, RedisKeys(settings.redis_prefix))
    finally:
        await client.aclose()
    checked_at = int(time.time() * 1000)
    assert now - 60_000 <= state.watermark_ms <= checked_at + MAX_LEAD_MS, (
        f"watermark {state.watermark_ms} is {(state.watermark_ms - checked_at) / HOUR:.1f} h "
        "ahead of the clock"
    )
