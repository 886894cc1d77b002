"""Rewinding consumers to their committed offsets, including partitions that have none.

aiokafka's ``seek_to_committed()`` only seeks partitions whose committed offset is above 0: a
partition never committed (or committed at 0) keeps its current fetch position. Both stages
rewind to throw away what was fetched but not yet durably applied (stage 1 after a failed send,
Faust after a rebalance cleared its agents' buffers), so leaving such a partition where it is
skips those records for good. Here every partition without a commit goes back to its
beginning, the position ``auto_offset_reset="earliest"`` gives it on a fresh assignment.

The Faust part plugs that into Faust's consumer through its transport: a Faust app built with
:class:`RewindingApp` rewinds this way whenever Faust calls ``seek_to_committed``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.worker.changelog_producer import AckedFlushProducer


async def rewind_to_committed(
    consumer: AIOKafkaConsumer,
    *partitions: TopicPartition,
    keep: Callable[[TopicPartition], bool] = lambda tp: False,
) -> dict[TopicPartition, int | None]:
    """Seek ``partitions`` (default: all assigned) to their committed offsets, and those
    without a commit to their beginning, except the ones ``keep`` says to leave alone.

    Returns the committed offsets, as ``AIOKafkaConsumer.seek_to_committed`` does.
    """
    committed: dict[TopicPartition, int | None] = await consumer.seek_to_committed(*partitions)
    uncommitted = [tp for tp, offset in committed.items() if not offset and not keep(tp)]
    if uncommitted:
        await consumer.seek_to_beginning(*uncommitted)
    return committed


class RewindingConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread, rewinding never-committed stream partitions too.

    Changelog partitions are left alone: table recovery positions those itself.
    """

    async def seek_to_committed(self) -> Mapping[Any, int]:
        """Seek every assigned partition to its committed offset or, lacking one, its start."""
        committed: Mapping[Any, int] = await self.call_thread(self._rewind)
        return committed

    def verify_event_path(self, now: float, tp: Any) -> None:
        """Faust's livelock check, skipping a partition whose position is being reset.

        aiokafka asserts that a partition has a position; right after a long stall (a
        SIGSTOP, a frozen VM) the check runs while the consumer rejoins and the positions are
        reset, and the AssertionError crashed the worker (RELIABILITY.md, bug 19).
        """
        try:
            super().verify_event_path(now, tp)
        except AssertionError:
            return None

    async def _rewind(self) -> Mapping[Any, int]:
        changelog_topics = self.app.tables.changelog_topics
        return await rewind_to_committed(  # type: ignore[return-value]
            self._ensure_consumer(), keep=lambda tp: tp.topic in changelog_topics
        )


class RewindingConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer using :class:`RewindingConsumerThread`."""

    def _new_consumer_thread(self) -> RewindingConsumerThread:
        return RewindingConsumerThread(self, loop=self.loop, beacon=self.beacon)


class RewindingTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with :class:`RewindingConsumer`, and a producer whose flush
    waits for every acknowledgement (:class:`AckedFlushProducer`), since Faust commits right
    after that flush."""

    Consumer = RewindingConsumer
    Producer = AckedFlushProducer


class RewindingApp(faust.App):
    """A Faust app whose consumer rewinds never-committed partitions after a rebalance.

    Without it, records Faust fetched from such a partition and then dropped from its agents'
    buffers when a rebalance began are never read again (RELIABILITY.md, open bug 4).
    """

    def _new_transport(self) -> RewindingTransport:
        return RewindingTransport(self.conf.broker_consumer, self)
