"""The bridge from a topic of OTLP spans to the usage topic, run by every worker.

The OpenTelemetry Collector's Kafka exporter (``encoding: otlp_proto``) writes one
``ExportTraceServiceRequest`` per record to a topic (``TOKENBOARD_OTLP_SPANS_TOPIC``). The
bridge reads it in its own consumer group (``<app_id>-spans``, so Kafka spreads the topic's
partitions over the workers), maps each span as the gateway's ``/v1/traces`` does
(:mod:`aggregations.otel`) and produces the events to the usage topic keyed by their event id,
where stage 1 counts each id once. Rejected GenAI spans and undecodable records go to the
dead-letter topic.

Offsets are committed only after Kafka acknowledged everything produced from the records
before them. A crash or a rebalance therefore replays some records, and their events come
again under the same ids: stage 1 drops them as duplicates, so the counts stay exact, and a
span that also arrived over OTLP/HTTP is counted once too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from aggregations.catalog import Catalog
from aggregations.events import Limits, encode_event
from aggregations.model_names import ModelResolver
from aggregations.otel import InvalidOtlp, SpanBatch, SpanMapper, dead_letter, decode_protobuf
from streams import metrics
from streams.settings import Settings
from streams.topics import ensure_topics

__all__ = ["BAD_OTLP", "SpanBridge"]

log = logging.getLogger("tokenboard.span_bridge")

#: Dead-letter reason of a spans-topic record that is not an ExportTraceServiceRequest (the
#: gateway answers such a body with 400; a topic has nobody to answer).
BAD_OTLP = "bad_otlp"
#: Records handled per round: bounds the futures in flight and what a crash replays.
MAX_RECORDS = 500
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 30.0


class SpanBridge:
    """Reads ``settings.otlp_spans_topic``, writes usage events and dead letters."""

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings = settings
        self.topic = settings.otlp_spans_topic
        self.mapper = SpanMapper(
            ModelResolver(catalog), Limits(max_event_bytes=settings.max_event_bytes)
        )
        self._stopping = asyncio.Event()
        #: Set once the bridge has subscribed (tests wait on it).
        self.ready = asyncio.Event()

    @classmethod
    def for_settings(cls, settings: Settings, catalog: Catalog) -> SpanBridge | None:
        """The bridge of a worker, or None when no spans topic is configured."""
        return cls(settings, catalog) if settings.otlp_spans_topic else None

    def stop(self) -> None:
        """Finish the current round and return from :meth:`run`."""
        self._stopping.set()

    async def run(self) -> None:
        """Bridge until :meth:`stop`; Kafka errors restart the clients from the committed
        offsets after a growing pause, and never end the worker."""
        delay = RETRY_FIRST_S
        while not self._stopping.is_set():
            try:
                await self._run_once()
                return
            except (KafkaError, OSError) as exc:
                log.warning("spans topic %s: %r; restarting in %.0f s", self.topic, exc, delay)
            except Exception:
                log.exception("spans topic %s: unexpected error; restarting", self.topic)
            self.ready.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _run_once(self) -> None:
        s = self.settings
        await ensure_topics(s)
        consumer = AIOKafkaConsumer(
            **s.kafka_client_options(),
            group_id=f"{s.app_id}-spans",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # A Collector's record holds a whole batch of spans.
            max_partition_fetch_bytes=8 * 1024 * 1024,
            # Partitions added to the spans topic are picked up within seconds, not minutes.
            metadata_max_age_ms=10_000,
            session_timeout_ms=20000,
            heartbeat_interval_ms=3000,
        )
        producer = AIOKafkaProducer(
            **s.kafka_client_options(),
            acks="all",
            enable_idempotence=True,
            linger_ms=20,
            request_timeout_ms=30000,
        )
        await producer.start()
        try:
            await consumer.start()
            consumer.subscribe([self.topic])
            self.ready.set()
            log.info("bridging OTLP spans from %s to %s", self.topic, s.usage_topic)
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=MAX_RECORDS)
                if batches:
                    await self._bridge(consumer, producer, batches)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await producer.stop()

    async def _bridge(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        batches: dict[TopicPartition, list[Any]],
    ) -> None:
        """Produce what the records hold, wait for every acknowledgement, then commit."""
        pending: list[asyncio.Future[Any]] = []
        try:
            totals, undecodable = await self._queue(producer, batches, pending)
        except BaseException:
            # Every queued send is awaited, so none is left with an unretrieved failure.
            await asyncio.gather(*pending, return_exceptions=True)
            raise
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                # Nothing committed: the restart reads these records again.
                raise outcome
        if undecodable:
            metrics.DEAD_LETTERED.labels(BAD_OTLP).inc(undecodable)
        metrics.count_spans(totals, "kafka", metrics.DEAD_LETTERED)
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
        try:
            await consumer.commit(offsets)
        except CommitFailedError as exc:
            # A rebalance gave the partitions away: their new owner reads these records
            # again, and stage 1 drops the copies by event id.
            log.info("spans offsets not committed (%s); the new owner replays them", exc)

    async def _queue(
        self,
        producer: AIOKafkaProducer,
        batches: dict[TopicPartition, list[Any]],
        pending: list[asyncio.Future[Any]],
    ) -> tuple[SpanBatch, int]:
        """Queue the events and dead letters of every record (futures into ``pending``);
        returns the verdicts and the number of undecodable records."""
        s = self.settings
        now_ms = time.time_ns() // 1_000_000
        totals = SpanBatch()
        undecodable = 0
        for records in batches.values():
            for record in records:
                try:
                    traces = decode_protobuf(record.value or b"")
                except InvalidOtlp as exc:
                    pending.append(await self._dead_letter_record(producer, record, exc))
                    undecodable += 1
                    continue
                batch = self.mapper.map_traces(traces, now_ms=now_ms)
                for event in batch.events:
                    future = await producer.send(
                        s.usage_topic, value=encode_event(event), key=event.event_id.encode()
                    )
                    pending.append(future)
                for mapped in batch.rejected:
                    letter = dead_letter(mapped)
                    future = await producer.send(
                        s.dead_letter_topic,
                        value=letter.value,
                        key=letter.key,
                        headers=letter.headers,
                    )
                    pending.append(future)
                totals.events += batch.events
                totals.rejected += batch.rejected
                totals.skipped += batch.skipped
        return totals, undecodable

    async def _dead_letter_record(
        self, producer: AIOKafkaProducer, record: Any, exc: InvalidOtlp
    ) -> asyncio.Future[Any]:
        source = f"{record.topic}/{record.partition}/{record.offset}"
        future: asyncio.Future[Any] = await producer.send(
            self.settings.dead_letter_topic,
            value=record.value,
            key=record.key,
            headers=[
                ("reason", BAD_OTLP.encode()),
                ("detail", f"{BAD_OTLP}: {exc}".encode("utf-8", "replace")[:1000]),
                ("source", source.encode()),
            ],
        )
        return future
