"""Producer SDK: send usage events to tokenboard's Kafka topic.

``UsageProducer`` is async (aiokafka: acks=all, idempotent, batched, orjson); every event is
keyed by its ``event_id`` so that duplicates land on the same partition, where the
pre-aggregator drops them. ``SyncUsageProducer`` wraps it for code without an event loop::

    with SyncUsageProducer(Settings.from_env()) as producer:
        producer.send(UsageEvent(event_id="abc", ts_ms=..., model="openai/gpt-5.1",
                                 prompt_tokens=1200, completion_tokens=300))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Coroutine, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import OutOfOrderSequenceNumber, UnknownProducerId

from aggregations.events import UsageEvent, encode_event
from streams import metrics
from streams.sdk.partitioner import default_partitioner, partition_of
from streams.settings import Settings

T = TypeVar("T")
log = logging.getLogger("tokenboard.sdk")

#: After these the idempotent producer's sequence numbers are out of step with the broker
#: (seen after a broker outage longer than the request timeout): every later send of that
#: producer fails too, so it is replaced by a new one (a new producer id).
SEQUENCE_ERRORS = (OutOfOrderSequenceNumber, UnknownProducerId)


class UsageProducer:
    """Async producer of usage events."""

    def __init__(self, settings: Settings, *, linger_ms: int = 20) -> None:
        self.settings = settings
        self.topic = settings.usage_topic
        self._linger_ms = linger_ms
        self._producer = self._new_producer()
        self._started = False
        self._generation = 0
        self._replacing = asyncio.Lock()
        self._restart_pending = False

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **self.settings.kafka_client_options(),
            acks="all",
            enable_idempotence=True,
            linger_ms=self._linger_ms,
            max_batch_size=512 * 1024,
            compression_type=None,
            request_timeout_ms=30000,
            partitioner=default_partitioner,
        )

    async def start(self) -> None:
        """Connect to Kafka; on failure nothing is left open (the error is raised)."""
        try:
            await self._producer.start()
        except BaseException:
            # aiokafka leaves a producer whose start failed half open: close it here, since
            # stop() only closes started producers.
            await self._producer.stop()
            raise
        self._started = True

    async def stop(self) -> None:
        """Flush and disconnect."""
        if self._started:
            await self._producer.stop()
            self._started = False

    async def __aenter__(self) -> UsageProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def send(self, event: UsageEvent) -> asyncio.Future[Any]:
        """Queue one event; the returned future resolves when Kafka acknowledged it."""
        return await self.send_raw(event.event_id, encode_event(event))

    async def send_raw(self, key: str, value: bytes) -> asyncio.Future[Any]:
        """Queue an already encoded event (the ingest gateway forwards bytes as received)."""
        producer = await self._ready()
        future: asyncio.Future[Any] = await producer.send(self.topic, value=value, key=key.encode())
        return future

    async def send_encoded(self, records: Sequence[tuple[str, bytes]]) -> list[asyncio.Future[Any]]:
        """Queue encoded ``(event id, value)`` records in one batch per usage partition.

        Each record goes where :meth:`send_raw` would put it (Kafka's default partitioner on
        its event id), but the batches are built here and handed over whole: one call per
        partition batch instead of one per record, which is what capped a producer process
        at about 10,000 events/s. The futures (one per batch) resolve when Kafka
        acknowledged their batch; pass them with ``len(records)`` to :meth:`acknowledged`.
        """
        producer = await self._ready()
        partitions = sorted(await producer.partitions_for(self.topic))
        count = len(partitions)
        batches: dict[int, Any] = {}
        futures: list[asyncio.Future[Any]] = []
        for event_id, value in records:
            key = event_id.encode()
            partition = partitions[partition_of(key, count)]
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            elif batch.append(key=key, value=value, timestamp=None) is not None:
                continue
            else:  # full: hand it over and start the next one with this record
                futures.append(await producer.send_batch(batch, self.topic, partition=partition))
                batch = batches[partition] = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)
        for partition, batch in batches.items():
            futures.append(await producer.send_batch(batch, self.topic, partition=partition))
        return futures

    async def send_record(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        """Queue a record for another topic through the same connection (the gateway's dead
        letters); the future resolves when Kafka acknowledged it."""
        producer = await self._ready()
        future: asyncio.Future[Any] = await producer.send(
            topic, value=value, key=key, headers=headers
        )
        return future

    async def send_and_wait(self, event: UsageEvent) -> None:
        """Send one event and wait for Kafka's acknowledgement."""
        await self.acknowledged([await self.send(event)])

    async def send_many(self, events: Iterable[UsageEvent]) -> int:
        """Send events in batches and wait until every one is acknowledged.

        After a sequence error the batch is sent once more through the new producer: the
        pipeline counts each event id once, so a resent event is never counted twice.
        """
        records = [(event.event_id, encode_event(event)) for event in events]
        try:
            await self.acknowledged(await self.send_encoded(records), len(records))
        except SEQUENCE_ERRORS:
            await self.acknowledged(await self.send_encoded(records), len(records))
        return len(records)

    async def acknowledged(
        self, futures: list[asyncio.Future[Any]], events: int | None = None
    ) -> None:
        """Wait for every send of ``futures`` (of ``events`` events: default one each); raise
        the first failure.

        After a sequence error the producer is replaced before raising, so that the caller's
        retry (same event ids: the pipeline counts each id once) goes through.
        """
        generation = self._generation
        # return_exceptions: every failure is collected, none left "never retrieved".
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            if any(isinstance(f, SEQUENCE_ERRORS) for f in failures):
                # Callers bound their sends with timeouts; a cancellation landing halfway
                # through would leave an unstarted producer that every later send waits on
                # forever. Shielded, the replacement always finishes.
                await asyncio.shield(self._replace_once(generation))
            raise failures[0]
        metrics.EVENTS_PRODUCED.labels(self.topic).inc(len(futures) if events is None else events)

    async def _replace_once(self, generation: int) -> None:
        async with self._replacing:
            # Concurrent callers see the same failure: replace the producer once.
            if generation == self._generation and (self._started or self._restart_pending):
                self._generation += 1
                old = self._producer
                self._started = False
                self._restart_pending = True
                with contextlib.suppress(Exception):
                    await old.stop()
                try:
                    await self._restart()
                except Exception as exc:  # Kafka unreachable: the next send tries again
                    log.warning("new Kafka producer failed to start (%r); next send retries", exc)

    async def _restart(self) -> None:
        """A new producer in place of the one replaced; raises when it cannot start."""
        self._producer = self._new_producer()
        await self.start()
        self._restart_pending = False

    async def _ready(self) -> AIOKafkaProducer:
        """The producer to send with: a replacement that could not start yet is started
        again here, by the next send (its failure is that send's error)."""
        if self._restart_pending:
            async with self._replacing:
                if self._restart_pending:
                    await self._restart()
        return self._producer

    async def flush(self) -> None:
        """Wait until everything queued is sent."""
        await self._producer.flush()


class SyncUsageProducer:
    """Blocking wrapper around :class:`UsageProducer`, running its loop in a thread."""

    def __init__(self, settings: Settings) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._producer = self._call(self._make(settings))
        self._call(self._producer.start())

    @staticmethod
    async def _make(settings: Settings) -> UsageProducer:
        return UsageProducer(settings)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def send(self, event: UsageEvent) -> None:
        """Send one event and wait for the acknowledgement."""
        self._call(self._producer.send_and_wait(event))

    def send_many(self, events: Iterable[UsageEvent]) -> int:
        """Send many events; returns once all are acknowledged."""
        return self._call(self._producer.send_many(list(events)))

    def close(self) -> None:
        """Flush, disconnect and stop the background loop."""
        self._call(self._producer.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> SyncUsageProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
