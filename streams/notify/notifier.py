"""The notifier: one :class:`~streams.notify.lane.Lane` per target over shared clients."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaProducer

from streams.notify.config import NotifyConfig
from streams.notify.delivery import DeadLetters
from streams.notify.lane import QUEUE_SIZE, Lane
from streams.notify.ledger import DeliveredLedger
from streams.settings import Settings
from streams.store.client import connect
from streams.store.keys import RedisKeys
from streams.store.names import EventNamer
from streams.topics import ensure_topics

__all__ = ["Notifier"]

log = logging.getLogger("tokenboard.notify")


class Notifier:
    """Delivers ranking changes and alerts to every configured target until :meth:`stop`.

    The lanes share one Redis client (the ledger, display names) and one Kafka producer
    (dead letters); each has its own consumer and HTTP session, so that no target's
    trouble reaches another's.
    """

    def __init__(
        self, settings: Settings, config: NotifyConfig, *, queue_size: int = QUEUE_SIZE
    ) -> None:
        self.settings = settings
        self.config = config
        #: Records each lane holds before it pauses fetching (:class:`Lane`).
        self.queue_size = queue_size
        self.lanes: list[Lane] = []
        #: Set once every lane is ready (:attr:`Lane.ready`).
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Ask every lane to finish its request in flight and return."""
        self._stopping.set()
        for lane in self.lanes:
            lane.stop()

    async def run(self) -> None:
        """Run every lane; return when stopped, raise when a lane failed."""
        s = self.settings
        await ensure_topics(s)
        redis = connect(s)
        producer = AIOKafkaProducer(**s.kafka_client_options(), acks="all", enable_idempotence=True)
        try:
            await producer.start()
            ledger = DeliveredLedger(redis, s.redis_prefix, self.config.remember_days)
            namer = EventNamer(redis, RedisKeys(s.redis_prefix))
            dead_letters = DeadLetters(producer, s.notify_dead_letter_topic)
            self.lanes = [
                Lane(target, s, ledger, namer, dead_letters, queue_size=self.queue_size)
                for target in self.config.targets
            ]
            if self._stopping.is_set():
                return
            await self._run_lanes()
        finally:
            await producer.stop()
            await redis.aclose()

    async def _run_lanes(self) -> None:
        lanes = {
            asyncio.create_task(lane.run(), name=f"notify-{lane.target.name}"): lane
            for lane in self.lanes
        }
        announce = asyncio.create_task(self._announce_ready())
        try:
            # A lane that fails stops them all: the process exits and its supervisor restarts
            # it, resuming every target at its committed position.
            done, _ = await asyncio.wait(lanes, return_when=asyncio.FIRST_EXCEPTION)
        except asyncio.CancelledError:
            for task in lanes:
                task.cancel()
            raise
        finally:
            self.stop()
            announce.cancel()
            await asyncio.wait([*lanes, announce])
        for task in done:
            if task.exception() is not None:
                log.error("%s: failed: %r", lanes[task].target.name, task.exception())
        for task in lanes:
            task.result()

    async def _announce_ready(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*(lane.ready.wait() for lane in self.lanes))
            self.ready.set()
            topics = f"{self.settings.rankings_topic}, {self.settings.alerts_topic}"
            log.info("ready: %d target(s), following %s", len(self.lanes), topics)

    def summary(self) -> list[str]:
        """One line per target: what it received since the start."""
        lines = []
        for lane in self.lanes:
            c = lane.counts
            lines.append(
                f"{lane.target.name}: {c.delivered} delivered, {c.dead_lettered} dead-lettered,"
                f" {c.failed_attempts} failed attempts, {c.duplicates} already delivered,"
                f" {c.filtered} filtered out"
            )
        return lines
