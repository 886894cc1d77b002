"""Stage 2 folds every partials record, even one Faust dropped on its way to the agent.

Faust can lose a record between the broker and an agent around a rebalance: when recovery
completes it resumes the stream partitions, seeks them to their committed offsets and then
resumes its flow control, which empties the agents' queues, so a record fetched in between
is dropped. Its consumer then commits past it, because its commit check lets the first
acknowledged offset be one above the committed one (``Consumer._new_offset``): the record is
never folded (RELIABILITY.md, bug 18: 2 of 7,200 calls lost after a stalled worker resumed).

The agent therefore checks, before folding, that each record follows the one folded before
it on its partition (or the committed offset, first after a rebalance, asked of the broker
when Faust does not know it yet; the start of the log for a partition never committed).
When records are missing it reads them from the partials topic itself, folds them in order,
and records them as handled in the consumer's own gap bookkeeping (``Consumer._add_gap``),
so the commit moves on exactly as if Faust had delivered them. Folding is idempotent, so a
record that does come later after all changes nothing. The repair runs inside the agent, on
the record that revealed the hole: Faust writes a table's changelog to the partition of the
event being processed, which is the partition of the missing records too. A dropped record
with nothing after it on its partition is therefore folded when the next record arrives (a
stage-1 flush of any source sends one to every partials partition).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams import metrics
from streams.settings import Settings

log = logging.getLogger("tokenboard.worker")

FoldRecord = Callable[[bytes, int], Awaitable[None]]


class GapGuard:
    """Makes the fold agent see every offset of its partials partitions, in order."""

    def __init__(self, app: faust.App, settings: Settings, fold: FoldRecord) -> None:
        self.app = app
        self.settings = settings
        self.fold = fold
        #: partials partition -> next offset the fold expects (this generation)
        self._next: dict[int, int] = {}
        self._generation: int | None = None

    async def _expected(self, tp: Any) -> int:
        generation = self.app.consumer_generation_id
        if generation != self._generation:
            # A rebalance: positions restart at the committed offsets.
            self._generation = generation
            self._next.clear()
        expected = self._next.get(tp.partition)
        if expected is None:
            consumer: Any = self.app.consumer
            expected = consumer._committed_offset.get(tp)
            if not expected:
                # Faust learns a new partition's committed offset only once it has sought it,
                # and records may arrive before; a partition never committed has none at all,
                # and Faust's commit check would then commit past records dropped before the
                # first one delivered (bug 22). Ask the broker.
                expected = await committed_or_start(self.settings, tp.topic, tp.partition)
            self._next[tp.partition] = expected
        return expected

    async def fold_in_order(self, raw: bytes, tp: Any, offset: int) -> None:
        """Fold the record at ``offset`` of ``tp``, after any records before it that never
        reached the agent."""
        expected = await self._expected(tp)
        if offset > expected:
            await self._repair(tp, expected, offset)
        await self.fold(raw, tp.partition)
        self._next[tp.partition] = offset + 1

    async def _repair(self, tp: Any, start: int, stop: int) -> None:
        """Fold records ``start`` .. ``stop - 1`` of ``tp`` read from the topic, and let the
        consumer commit past them."""
        log.warning(
            "partials partition %d: offsets %d..%d never reached the fold; folding them from "
            "the topic",
            tp.partition, start, stop - 1,
        )  # fmt: skip
        records = await read_range(self.settings, tp.topic, tp.partition, start, stop)
        for offset, value in records:
            await self.fold(value, tp.partition)
            self._next[tp.partition] = offset + 1
        metrics.PARTIALS_REPAIRED.inc(len(records))
        consumer: Any = self.app.consumer
        await consumer._add_gap(tp, start, stop - 1)


async def committed_or_start(settings: Settings, topic: str, partition: int) -> int:
    """The worker group's committed offset of one partition or, if it has none, the first
    offset still in the partition's log (where the rewind starts a never-committed one)."""
    tp = TopicPartition(topic, partition)
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        found = await admin.list_consumer_group_offsets(settings.app_id, partitions=[tp])
    finally:
        await admin.close()
    committed = found.get(tp)
    if committed is not None and committed.offset > 0:
        return int(committed.offset)
    reader = AIOKafkaConsumer(**settings.kafka_client_options(), enable_auto_commit=False)
    await reader.start()
    try:
        start: int = (await reader.beginning_offsets([tp]))[tp]
        return start
    finally:
        await reader.stop()


async def read_range(
    settings: Settings, topic: str, partition: int, start: int, stop: int
) -> list[tuple[int, bytes]]:
    """(offset, value) of the records ``start`` .. ``stop - 1`` of one partition."""
    reader = AIOKafkaConsumer(**settings.kafka_client_options(), enable_auto_commit=False)
    await reader.start()
    try:
        tp = TopicPartition(topic, partition)
        reader.assign([tp])
        reader.seek(tp, start)
        out: list[tuple[int, bytes]] = []
        while await reader.position(tp) < stop:
            batch = await reader.getmany(tp, timeout_ms=1000)
            for record in batch.get(tp, []):
                if record.offset >= stop:
                    break
                out.append((record.offset, record.value or b""))
        return out
    finally:
        await reader.stop()
