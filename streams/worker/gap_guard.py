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
event being processed, which is the partition of the missing records too.

A dropped tail, records with nothing after them on their partition, has no next record to
reveal it while nothing more is produced: stage 1 flushes only when a source has news, so
after a load ended, or in a quiet hour, a partition stayed 20 records short for good
(RELIABILITY.md, bug 25). :meth:`GapGuard.check_tails` (a timer) finds a partials partition
whose end is ahead of the fold while the fold has not moved on it for :data:`TAIL_IDLE_S`,
and appends a *tail probe* to it (:func:`aggregations.partials.tail_probe`, a record that
changes nothing when folded). The probe reaches the agent like any record and the repair
above folds the tail before it. The timer neither seeks Faust's consumer (its thread owns
it: a seek from the event loop crashed a worker) nor writes a table (a table written
outside the agent's iteration goes to the wrong changelog partition). A partition merely
behind (a backlog, a long fold of another partition) gets a probe too: that costs one
small record per :data:`TAIL_IDLE_S`, folded in order once the agent gets there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from aggregations.partials import tail_probe
from streams import metrics
from streams.settings import Settings

log = logging.getLogger("tokenboard.worker")

FoldRecord = Callable[[bytes, int], Awaitable[None]]

#: A partials partition whose end is ahead of the fold, with the fold standing still on it
#: for this long, gets a tail probe.
TAIL_IDLE_S = 5.0
#: How often the timer looks for such partitions.
TAIL_CHECK_S = 1.0


class GapGuard:
    """Makes the fold agent see every offset of its partials partitions, in order."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        fold: FoldRecord,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.settings = settings
        self.fold = fold
        self._clock = clock
        #: partials partition -> next offset the fold expects (this generation)
        self._next: dict[int, int] = {}
        self._generation: int | None = None
        #: partials partition -> when the fold last moved on it, or it was last probed
        self._moved_at: dict[int, float] = {}
        #: when the worker was last seen rebalancing or recovering its tables
        self._settled_at = clock()

    def _follow_generation(self) -> None:
        generation = self.app.consumer_generation_id
        if generation != self._generation:
            # A rebalance: positions restart at the committed offsets.
            self._generation = generation
            self._next.clear()
            self._moved_at.clear()
            self._settled_at = self._clock()

    async def _expected(self, tp: Any) -> int:
        self._follow_generation()
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
        self._moved_at[tp.partition] = self._clock()

    async def check_tails(self) -> None:
        """Send a tail probe to each owned partials partition whose end is ahead of the fold
        while the fold stood still on it for :data:`TAIL_IDLE_S` (a timer's job).

        Never raises: a Faust timer that raises stops the worker; the next tick tries again.
        """
        app: Any = self.app
        now = self._clock()
        if app.consumer is None or app.rebalancing or app.in_recovery:
            self._settled_at = now
            return
        try:
            await self._probe_idle_tails(now)
        except Exception as exc:  # a timer that raises would stop the worker
            log.warning("lost-tail check failed, trying again: %r", exc)

    async def _probe_idle_tails(self, now: float) -> None:
        app: Any = self.app
        consumer: Any = app.consumer
        topic = self.settings.partials_topic
        owned = [tp for tp in consumer.assignment() if tp.topic == topic]
        if not owned:
            return
        # Asked on Faust's consumer thread, which owns the aiokafka consumer.
        highwaters = await consumer.highwaters(*owned)
        self._follow_generation()
        for tp in owned:
            highwater = highwaters.get(tp)
            folded_to = self._next.get(tp.partition)
            if folded_to is None:
                folded_to = consumer._committed_offset.get(tp) or 0
            if highwater is None or highwater <= folded_to:
                continue
            moved_at = max(self._moved_at.get(tp.partition, 0.0), self._settled_at)
            if now - moved_at < TAIL_IDLE_S:
                continue
            log.warning(
                "partials partition %d: the fold stands at offset %d, the partition ends at "
                "%d; sending a tail probe",
                tp.partition, folded_to, highwater,
            )  # fmt: skip
            self._moved_at[tp.partition] = now  # one probe per idle period
            await app.producer.send_and_wait(topic, None, tail_probe(), tp.partition, None, None)
            metrics.TAIL_PROBES.inc()

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
