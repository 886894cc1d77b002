"""Following the published ranking changes and alerts live, without a consumer group.

``tokenboard watch`` prints them, and the read API's live feed streams them to browsers.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.settings import Settings

__all__ = ["EventTail"]

# Seconds between metadata checks while a followed topic does not exist yet.
TOPIC_RECHECK_S = 5.0
# At most this long reading the backlog at the start (a live topic is short; a broken one
# must not hold a viewer forever).
BACKLOG_READ_S = 10.0


class EventTail:
    """Follows the rankings and alerts topics without a consumer group (nothing is committed).

    After :meth:`start` returns, every event published later is delivered: the start offsets
    are fixed explicitly instead of through a lazy offset reset. ``backlog`` also delivers the
    latest ``backlog`` events before that, across all partitions, in time order; a followed
    topic created after the start is read from its beginning.
    """

    def __init__(self, settings: Settings, *, from_beginning: bool = False, backlog: int = 0):
        self.settings = settings
        self.topics = (settings.rankings_topic, settings.alerts_topic)
        self.from_beginning = from_beginning
        self.backlog = backlog
        self._consumer: AIOKafkaConsumer | None = None
        self._assigned: set[TopicPartition] = set()
        self._checked_at = 0.0
        #: End offsets at the start, per partition: what lies before them is backlog.
        self._backlog_end: dict[TopicPartition, int] = {}
        self._pending: list[dict[str, Any]] = []

    async def __aenter__(self) -> EventTail:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect and fix the start offsets."""
        consumer = AIOKafkaConsumer(
            **self.settings.kafka_client_options(), group_id=None, enable_auto_commit=False
        )
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()  # else "Unclosed AIOKafkaConsumer" at exit
            raise
        self._consumer = consumer
        await self._assign(initial=True)
        if self.backlog > 0 and not self.from_beginning:
            await self._read_backlog()

    async def _read_backlog(self) -> None:
        """Read what precedes the start on every partition (at most ``backlog`` records each:
        any of them may be among the latest overall), keep the latest ``backlog`` in time
        order, and queue them ahead of whatever arrived meanwhile."""
        consumer = self._consumer
        assert consumer is not None
        backlog: list[Any] = []
        live: list[Any] = []
        deadline = time.monotonic() + BACKLOG_READ_S
        while time.monotonic() < deadline and await self._backlog_left(deadline):
            batches = await consumer.getmany(timeout_ms=200)
            for tp, chunk in batches.items():
                end = self._backlog_end.get(tp, 0)
                backlog += [r for r in chunk if r.offset < end]
                live += [r for r in chunk if r.offset >= end]
        latest = self._in_time_order(backlog)[-self.backlog :]
        self._pending = self._events(latest) + self._events(self._in_time_order(live))

    async def _backlog_left(self, deadline: float) -> bool:
        consumer = self._consumer
        assert consumer is not None
        for tp, end in self._backlog_end.items():
            try:
                # position() waits while a partition's offset is being reset: the backlog
                # read stays within its deadline all the same.
                left = max(0.01, deadline - time.monotonic())
                if await asyncio.wait_for(consumer.position(tp), left) < end:
                    return True
            except TimeoutError:
                return False
        return False

    async def stop(self) -> None:
        """Disconnect."""
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def next_batch(self, timeout_ms: int = 1000) -> list[dict[str, Any]]:
        """The events that arrived within ``timeout_ms``, oldest first (maybe none)."""
        consumer = self._consumer
        assert consumer is not None, "start() first"
        if self._pending:
            pending, self._pending = self._pending, []
            return pending
        if len(self._topics_assigned()) < len(self.topics):
            if time.monotonic() - self._checked_at > TOPIC_RECHECK_S:
                await self._assign(initial=False)
            if not self._assigned:
                await asyncio.sleep(timeout_ms / 1000)
                return []
        batches = await consumer.getmany(timeout_ms=timeout_ms)
        return self._events(self._in_time_order([r for chunk in batches.values() for r in chunk]))

    def _in_time_order(self, records: list[Any]) -> list[Any]:
        # Chronological across partitions; on a tie a ranking change precedes the alerts
        # the ranker raised in the same pass.
        return sorted(
            records, key=lambda r: (r.timestamp, r.topic != self.topics[0], r.partition, r.offset)
        )

    @staticmethod
    def _events(records: list[Any]) -> list[dict[str, Any]]:
        events = []
        for record in records:
            try:
                event = orjson.loads(record.value)
            except orjson.JSONDecodeError:
                continue  # not ours to judge; a feed shows only what it can read
            if isinstance(event, dict):
                events.append(event)
        return events

    def _topics_assigned(self) -> set[str]:
        return {tp.topic for tp in self._assigned}

    async def _assign(self, *, initial: bool) -> None:
        consumer = self._consumer
        assert consumer is not None
        self._checked_at = time.monotonic()
        # The public topics() call discards the partition counts it fetched.
        cluster = await consumer._client.fetch_all_metadata()
        wanted = {
            TopicPartition(topic, p)
            for topic in self.topics
            for p in cluster.partitions_for_topic(topic) or ()
        }
        new = sorted(wanted - self._assigned)
        if not new:
            return
        kept = {tp: await consumer.position(tp) for tp in self._assigned}
        consumer.assign(sorted(wanted))
        for tp, offset in kept.items():
            consumer.seek(tp, offset)
        begin = await consumer.beginning_offsets(new)
        end = await consumer.end_offsets(new)
        for tp in new:
            if not initial or self.from_beginning:
                consumer.seek(tp, begin[tp])
            else:
                consumer.seek(tp, max(begin[tp], end[tp] - self.backlog))
                if end[tp] > begin[tp] and self.backlog:
                    self._backlog_end[tp] = end[tp]
        self._assigned = wanted
