"""The ranker's state topic: a small compacted topic that a Redis loss cannot reach.

The ranker writes each fact of :class:`~aggregations.ranker_state.RankerState` here before it
records it in Redis, and reads the topic to its end whenever it may not trust its memory or
Redis (it became leader, or Redis lost its state). Everything goes to partition 0: one
ordered log, and a reader that needs no partition metadata, even if the topic was created
with more partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaTimeoutError

from aggregations.ranker_state import RankerState, Record
from streams.settings import Settings

log = logging.getLogger("tokenboard.ranker")

PARTITION = 0
LOAD_TIMEOUT_S = 60.0


class RankerStateLog:
    """Reads the ranker's state topic back to its end, and appends records to it."""

    def __init__(self, settings: Settings, load_timeout_s: float = LOAD_TIMEOUT_S) -> None:
        self.settings = settings
        self.topic = settings.ranker_state_topic
        self.load_timeout_s = load_timeout_s
        self._producer: AIOKafkaProducer | None = None

    async def load(self) -> RankerState | None:
        """The state the topic holds, read up to its end offset as of now.

        ``None`` when nothing was ever written to the topic (end offset 0), which tells a
        fresh topic from one whose records all expired. Raises ``KafkaTimeoutError`` when the
        end is not reached within ``load_timeout_s``.
        """
        reader = AIOKafkaConsumer(
            **self.settings.kafka_client_options(),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await reader.start()
        try:
            tp = TopicPartition(self.topic, PARTITION)
            reader.assign([tp])
            end = (await reader.end_offsets([tp]))[tp]
            if end == 0:
                return None
            await reader.seek_to_beginning(tp)
            state = RankerState()
            applied = 0
            deadline = time.monotonic() + self.load_timeout_s
            while await reader.position(tp) < end:
                if time.monotonic() > deadline:
                    raise KafkaTimeoutError(f"{self.topic} not read to offset {end} in time")
                batch = await reader.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    if record.key is None:
                        continue
                    try:
                        state.apply(record.key, record.value)
                        applied += 1
                    except ValueError as exc:
                        # A record this version cannot read must not stop the ranker for good.
                        log.warning("%s offset %d skipped: %s", self.topic, record.offset, exc)
        finally:
            await reader.stop()
        log.info(
            "ranker state read from %s: %d records up to offset %d, %d closed weeks",
            self.topic, applied, end, len(state.closed),
        )  # fmt: skip
        return state

    async def put(self, records: Sequence[Record]) -> None:
        """Append ``records`` in order and return once the broker acknowledged all of them."""
        if not records:
            return
        producer = await self._started_producer()
        futures = [
            await producer.send(self.topic, value=value, key=key.encode(), partition=PARTITION)
            for key, value in records
        ]
        await asyncio.gather(*futures)

    async def stop(self) -> None:
        """Stop the producer, if one was started."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def _started_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                **self.settings.kafka_client_options(), acks="all", enable_idempotence=True
            )
            try:
                await producer.start()
            except BaseException:
                # A failed start leaves the client open (see RELIABILITY.md, bug 10).
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
        return self._producer
