"""The ranker's side of a worker: its producer and the leader-only rank tick.

The ranking itself is :class:`streams.leader.ranker.Ranker`; this module gives it a way to
publish and runs it once a second on the worker that is the group's leader.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from streams import metrics
from streams.leader.ranker import Ranker
from streams.settings import Settings
from streams.worker.jobs import run_guarded

log = logging.getLogger("tokenboard.worker")


class RankerPublisher:
    """Sends the ranker's events (keyed by their id) with an idempotent producer, started
    on the first one: only the leader ever publishes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        """Send ``event`` to ``topic`` and wait for its acknowledgement."""
        producer = self._producer
        if producer is None:
            producer = AIOKafkaProducer(
                **self.settings.kafka_client_options(), acks="all", enable_idempotence=True
            )
            await producer.start()
            self._producer = producer
        await producer.send_and_wait(topic, orjson.dumps(event), key=event["id"].encode())
        metrics.EVENTS_PRODUCED.labels(topic).inc()

    async def stop(self) -> None:
        """Stop the producer, if one was started."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()


class RankJob:
    """The leader's rank tick: one :meth:`Ranker.tick`, after a reload of the ranker's state
    when a rebalance happened since the last tick."""

    def __init__(self, app: faust.App, ranker: Ranker) -> None:
        self.app = app
        self.ranker = ranker
        #: the app's rebalance count at the last tick (-1: none yet)
        self._ranked_in_rebalance = -1

    async def tick(self) -> None:
        """The timer's job; an unexpected error is logged and counted, not raised."""
        await run_guarded("rank_tick", self._rank)

    async def _rank(self) -> None:
        # Leadership moves only in a rebalance, and another leader may have published
        # meanwhile: the first tick after one reads the ranker's state topic again.
        if self.app.rebalancing_count != self._ranked_in_rebalance:
            self._ranked_in_rebalance = self.app.rebalancing_count
            self.ranker.forget()
        try:
            await self.ranker.tick()
        except (RedisError, KafkaError) as exc:
            # Unpublished changes are recomputed next tick: what was published is recorded.
            log.warning("ranker tick skipped, Redis or Kafka unavailable: %r", exc)
