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

A dropped record with nothing after it on its partition (a lost tail) has no next record to
reveal it while nothing more is produced: stage 1 flushes only when a source has news, so
after the load ends, or in a quiet hour, the tail stayed unfolded (RELIABILITY.md, bug 24:
a partials partition stuck 20 records short after a scale-down). :meth:`GapGuard.check_tails`
(a timer) finds a partition whose high-water mark is ahead of the fold while no record of it
reached the agent for :data:`TAIL_IDLE_S`, and seeks Faust's consumer back to the first
missing offset. It folds nothing itself (a table cannot be written outside stream iteration,
which is why an earlier timer that repaired tails crashed a worker): Faust delivers the
records again and the agent folds them like any others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams import metrics
from streams.settings import Settings

log = logging.getLogger("tokenboard.worker")

FoldRecord = Callable[[bytes, int], Awaitable[None]]

#: A partials partition whose high-water mark is ahead of the fold, with no record of it
#: reaching the agent for this long, has lost its tail: its records are fetched again.
TAIL_IDLE_S = 5.0
#: How often the timer looks for lost tails.
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
        #: partials partition -> when a record of it last reached the agent (or its tail
        #: was last sought again)
        self._last_seen: dict[int, float] = {}
        self._generation: int | None = None
        self._generation_started = clock()

    async def _expected(self, tp: Any) -> int:
        generation = self.app.consumer_generation_id
        if generation != self._generation:
            # A rebalance: positions restart at the committed offsets.
            self._generation = generation
            self._generation_started = self._clock()
            self._next.clear()
            self._last_seen.clear()
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
        # A record delivered again (after check_tails sought back) does not move it back.
        self._next[tp.partition] = max(self._next.get(tp.partition, 0), offset + 1)
        self._last_seen[tp.partition] = self._clock()

    async def check_tails(self) -> None:
        """Seek Faust's consumer back to a partials partition's first unfolded offset when
        its high-water mark is ahead of the fold and it stayed idle (a timer's job).

        Never raises: a Faust timer that raises stops the worker; the next tick tries again.
        """
        app: Any = self.app
        consumer: Any = app.consumer
        if consumer is None or app.rebalancing or app.in_recovery:
            return
        try:
            for tp in list(consumer.assignment()):
                if tp.topic != self.settings.partials_topic:
                    continue
                highwater = consumer.highwater(tp)
                if highwater is None:
                    continue
                generation = app.consumer_generation_id
                expected = await self._expected(tp)
                if app.rebalancing or app.consumer_generation_id != generation:
                    return  # a rebalance began meanwhile: it rewinds everything itself
                expected = self._next.get(tp.partition, expected)
                if highwater <= expected:
                    continue
                now = self._clock()
                seen = self._last_seen.get(tp.partition, self._generation_started)
                if now - seen < TAIL_IDLE_S:
                    continue
                log.warning(
                    "partials partition %d: offsets %d..%d never reached the fold and nothing "
                    "followed them; fetching them again",
                    tp.partition, expected, highwater - 1,
                )  # fmt: skip
                self._last_seen[tp.partition] = now  # at most one seek per idle period
                await consumer.seek(tp, expected)
        except Exception as exc:  # a timer that raises would stop the worker
            log.warning("lost-tail check failed, trying again: %r", exc)

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
