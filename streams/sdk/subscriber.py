"""Subscribe helper for consumers of ranking changes and alerts.

::

    async for event in subscribe(Settings.from_env(), group_id="my-service"):
        if event["type"] == "ranking_change" and event["kind"] == "new_leader":
            ...

Events are published at least once with deterministic ids; the helper drops ids it has
already yielded (within ``remember`` recent ids), so a consumer sees each change once even
when a restarted leader publishes it again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

import orjson
from aiokafka import AIOKafkaConsumer

from streams.settings import Settings

Stream = Literal["rankings", "alerts"]


async def subscribe(
    settings: Settings,
    streams: Sequence[Stream] = ("rankings", "alerts"),
    *,
    group_id: str | None = None,
    from_beginning: bool = False,
    remember: int = 100_000,
) -> AsyncIterator[dict[str, Any]]:
    """Yield ranking-change and alert events as dicts, each id once.

    With ``group_id`` the consumer commits its position (a restarted consumer resumes where
    it stopped); without one it starts at the end (or the beginning with ``from_beginning``).
    """
    topics = [
        settings.rankings_topic if s == "rankings" else settings.alerts_topic for s in streams
    ]
    consumer = AIOKafkaConsumer(
        *topics,
        **settings.kafka_client_options(),
        group_id=group_id,
        enable_auto_commit=group_id is not None,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    seen: OrderedDict[str, None] = OrderedDict()
    await consumer.start()
    try:
        async for record in consumer:
            try:
                event = orjson.loads(record.value)
            except orjson.JSONDecodeError:
                continue
            event_id = str(event.get("id", ""))
            if event_id in seen:
                continue
            seen[event_id] = None
            if len(seen) > remember:
                seen.popitem(last=False)
            yield event
    finally:
        await consumer.stop()
