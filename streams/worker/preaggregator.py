"""Stage 1: a plain aiokafka loop that validates, deduplicates and pre-aggregates raw events.

It runs inside every worker process, in the consumer group ``<app_id>-preagg``; Kafka
spreads the usage partitions over the workers. Per partition it keeps a
:class:`~aggregations.partials.BlockAccumulator` and a :class:`~aggregations.dedup.Deduplicator`
and commits offsets only at block starts, after everything of the finished block was
acknowledged (ARCHITECTURE.md explains why that makes the counts exact).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from aiokafka.errors import CommitFailedError, KafkaError

from aggregations.batch_decode import decode_many
from aggregations.catalog import Catalog
from aggregations.clock import watermark_cap
from aggregations.dedup import Deduplicator, pack_entries, unpack_entries
from aggregations.events import (
    DEFAULT_LIMITS,
    CountedFields,
    InvalidEvent,
    Limits,
    decode_fields,
)
from aggregations.partials import BlockAccumulator, block_of, flush_records
from aggregations.prices import PriceBook
from streams import metrics
from streams.sdk.partitioner import partition_of
from streams.sdk.producer import SEQUENCE_ERRORS
from streams.settings import Settings
from streams.worker.rewind import rewind_to_committed

#: A partition this many records behind its end has a backlog: see PreAggregator._behind.
BACKLOG_RECORDS = 5000
#: While behind, partials are flushed at least this often (block ends flush anyway).
BACKLOG_FLUSH_S = 5.0

log = logging.getLogger("tokenboard.preaggregator")


@dataclass
class PartitionState:
    """Everything stage 1 keeps for one usage partition it owns."""

    partition: int
    accumulator: BlockAccumulator
    dedup: Deduplicator
    counted: int = 0
    newest_record_ms: int = 0
    pending_ms: list[int] = field(default_factory=list)
    #: The watermark last sent to the partials partitions: a flush also sends when only
    #: the watermark moved (a restored partition's first flush tells where it stands).
    sent_watermark_ms: int = 0


def judge(
    raw: bytes | None, now_ms: int, watermark_ms: int, limits: Limits
) -> CountedFields | InvalidEvent:
    """The counted fields of one record, or why it is rejected, at this watermark."""
    try:
        return decode_fields(raw or b"", now_ms=now_ms, watermark_ms=watermark_ms, limits=limits)
    except InvalidEvent as exc:
        return exc


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: PreAggregator) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            self.owner.states.pop(tp.partition, None)
            self.owner.assigned.discard(tp.partition)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.owner.assigned = {tp.partition for tp in assigned}


class PreAggregator:
    """Reads ``usage``, writes ``partials``, ``dedup`` and ``dead-letter``."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        *,
        prices: PriceBook | None = None,
        limits: Limits = DEFAULT_LIMITS,
        max_batch: int = 20000,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        #: Prices of the events' models (none: every token is counted unpriced).
        self.prices = prices if prices is not None else PriceBook()
        self.limits = Limits(
            max_tokens_per_call=limits.max_tokens_per_call,
            max_event_bytes=settings.max_event_bytes,
            max_future_ms=limits.max_future_ms,
            retention_ms=settings.retention_weeks * 7 * 86_400_000,
        )
        self.max_batch = max_batch
        self.states: dict[int, PartitionState] = {}
        # Catalog answers by model id: one dict lookup per bucket instead of a resolution.
        self._describe = catalog.describer()
        self.assigned: set[int] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._pending: list[asyncio.Future[Any]] = []
        #: usage partition -> highest offset whose dead letter was counted by this process
        self._dead_lettered_through: dict[int, int] = {}
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()

    # Lifecycle ------------------------------------------------------------------------
    async def run(self) -> None:
        """Consume until :meth:`stop` is called."""
        s = self.settings
        self._producer = self._new_producer()
        self._consumer = AIOKafkaConsumer(
            **s.kafka_client_options(),
            group_id=f"{s.app_id}-preagg",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
            session_timeout_ms=20000,
            heartbeat_interval_ms=3000,
        )
        await self._producer.start()
        try:
            await self._consumer.start()
            self._consumer.subscribe([s.usage_topic], listener=_Rebalance(self))
            self.ready.set()
            await self._loop()
        finally:
            with contextlib.suppress(Exception):
                await self._flush(finishing=[])
            await self._consumer.stop()
            await self._producer.stop()

    def stop(self) -> None:
        """Ask the loop to finish its current batch and return."""
        self._stopping.set()

    async def _loop(self) -> None:
        assert self._consumer is not None
        interval_s = self.settings.flush_interval_ms / 1000
        last_flush = time.monotonic()
        while not self._stopping.is_set():
            try:
                batches = await self._consumer.getmany(
                    timeout_ms=self.settings.flush_interval_ms, max_records=self.max_batch
                )
                for tp, records in batches.items():
                    await self._fold_records(tp, records)
                since_flush = time.monotonic() - last_flush
                if since_flush >= interval_s and (
                    since_flush >= BACKLOG_FLUSH_S or not self._behind()
                ):
                    await self._flush(finishing=[])
                    last_flush = time.monotonic()
            except KafkaError as exc:
                await self._start_over(exc)

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **self.settings.kafka_client_options(),
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=1024 * 1024,
            max_request_size=8 * 1024 * 1024,
        )

    async def _replace_producer(self) -> None:
        """Close the producer and start a new one, retrying while Kafka is unreachable."""
        while not self._stopping.is_set():
            old, self._producer = self._producer, self._new_producer()
            if old is not None:
                with contextlib.suppress(Exception):
                    await old.stop()
            try:
                await self._producer.start()
                return
            except KafkaError as exc:
                log.warning("new producer could not connect, retrying: %r", exc)
                await asyncio.sleep(1.0)

    async def _start_over(self, exc: Exception) -> None:
        """After a failed send (e.g. a broker outage): replay every partition from its block start.

        Nothing past the last committed block start was committed, and replays recompute the
        same cumulative sums, so dropping the in-memory state loses and doubles nothing.
        """
        assert self._consumer is not None
        log.warning("Kafka error, replaying owned partitions from their block starts: %r", exc)
        self.states.clear()
        self._pending = []
        await asyncio.sleep(1.0)
        if isinstance(exc, SEQUENCE_ERRORS):
            # Its sequence numbers are out of step with the broker for good: every later
            # send would fail the same way. A new producer gets a new producer id.
            await self._replace_producer()
        with contextlib.suppress(KafkaError, AssertionError):
            await rewind_to_committed(self._consumer)

    def _behind(self) -> bool:
        """True while some owned partition has a backlog (and reports the lag per partition).

        Flushing costs per key touched, not per event: while a backlog is read, flushing every
        interval would redo the same keys' work many times per block for no visible gain.
        """
        assert self._consumer is not None
        behind = False
        for partition, state in self.states.items():
            tp = TopicPartition(self.settings.usage_topic, partition)
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                lag = max(0, highwater - state.accumulator.end - 1)
                metrics.CONSUMER_LAG.labels(str(partition)).set(lag)
                behind = behind or lag > BACKLOG_RECORDS
        return behind

    # Folding ------------------------------------------------------------------------
    async def _fold_records(self, tp: TopicPartition, records: list[Any]) -> None:
        state = self.states.get(tp.partition)
        if state is not None and records[0].offset <= state.accumulator.end:
            # The consumer went back (a rebalance reset it to the committed block start):
            # folding those offsets again would count them twice, so start the block afresh.
            state = None
        if state is None:
            state = await self._start_partition(tp, records[0].offset)
            if state is None:
                return
        size = self.settings.block_size
        now_ms = int(time.time() * 1000)
        counted = duplicates = late = tokens = rerouted = 0
        acc = state.accumulator
        acc.watermark_cap_ms = cap = watermark_cap(now_ms)
        block_end = (acc.block + 1) * size
        is_duplicate = state.dedup.is_duplicate_bytes
        describe = self._describe
        limits = self.limits
        retention_ms = limits.retention_ms
        # One native call validates the batch; the watermark moves while the batch is folded,
        # so retention is judged per event below, against the watermark at that event.
        verdicts = decode_many(
            [record.value for record in records], now_ms=now_ms, watermark_ms=None, limits=limits
        )
        # The counted events of the batch's current block, folded by one add_many per block:
        # its buckets are touched once per distinct bucket, not per event. ``last`` is the
        # offset of the run's last record, counted or not (the block's end); -1 when none.
        run: list[CountedFields] = []
        last = -1
        # The watermark at each event, as add_many will move it (aggregations/partials.py
        # add): retention is judged against it before the run is folded.
        watermark = acc.watermark_ms
        for record, verdict in zip(records, verdicts, strict=True):
            offset = record.offset
            if offset >= block_end:
                if last >= 0:
                    found_late, found_tokens = acc.add_many(run, last, describe)
                    counted, late, tokens = (
                        counted + len(run), late + found_late, tokens + found_tokens
                    )  # fmt: skip
                    run = []
                await self._finish_block(state, block_of(offset, size))
                acc = state.accumulator
                acc.watermark_cap_ms = cap
                block_end = (acc.block + 1) * size
            last = offset
            if watermark and (
                isinstance(verdict, InvalidEvent) or verdict[1] < watermark - retention_ms
            ):
                # What decode_fields says with the watermark: too_old, or the reason it
                # ranks first (its checks run in a fixed order).
                verdict = judge(record.value, now_ms, watermark, limits)
            if isinstance(verdict, InvalidEvent):
                self._dead_letter(record, verdict)
                continue
            event_id = verdict[0]
            # The usual record is keyed by its id: its key is then the id's encoding, which
            # the dedup digests without encoding the id again.
            id_bytes = record.key
            if id_bytes is None or id_bytes != event_id.encode():
                home = self._home(event_id)
                if home != tp.partition:
                    # Away from its id's partition: duplicates are only found within one
                    # partition, so the event is counted where its id lives.
                    self._reroute(record, event_id, home)
                    rerouted += 1
                    continue
                id_bytes = event_id.encode()
            if is_duplicate(id_bytes, offset, record.timestamp):
                duplicates += 1
                continue
            run.append(verdict)
            ts_ms = verdict[1]
            if ts_ms > watermark:
                watermark = ts_ms if ts_ms <= cap else max(watermark, cap)
        if last >= 0:
            found_late, found_tokens = acc.add_many(run, last, describe)
            counted, late, tokens = counted + len(run), late + found_late, tokens + found_tokens
        if records:
            state.pending_ms.append(records[-1].timestamp)
            state.newest_record_ms = max(state.newest_record_ms, records[-1].timestamp)
        metrics.EVENTS_CONSUMED.inc(len(records))
        metrics.EVENTS_COUNTED.inc(counted)
        metrics.TOKENS_COUNTED.inc(tokens)
        if duplicates:
            metrics.DUPLICATES.inc(duplicates)
        if rerouted:
            metrics.REROUTED.inc(rerouted)
        if late:
            metrics.LATE_EVENTS.inc(late)
        state.counted += counted

    def _home(self, event_id: str) -> int:
        """The usage partition Kafka's default partitioner gives a record keyed by
        ``event_id`` (murmur2, as every Kafka client's default)."""
        return partition_of(event_id.encode(), self._usage_partitions())

    def _usage_partitions(self) -> int:
        assert self._consumer is not None
        known = self._consumer.partitions_for_topic(self.settings.usage_topic)
        return len(known) if known else self.settings.partitions

    def _reroute(self, record: Any, event_id: str, home: int) -> None:
        """Send the event, unchanged, to its id's partition ``home``, keyed by its id.

        The send is acknowledged before this block's offsets are committed (like a
        dead letter), and a replay that sends it again is a duplicate there, dropped by id.
        """
        assert self._producer is not None
        source = f"{record.topic}/{record.partition}/{record.offset}"
        future = asyncio.ensure_future(
            self._producer.send(
                self.settings.usage_topic,
                value=record.value,
                key=event_id.encode(),
                partition=home,
                timestamp_ms=record.timestamp,
                headers=[*(record.headers or ()), ("rerouted-from", source.encode())],
            )
        )
        self._pending.append(future)

    def _dead_letter(self, record: Any, exc: InvalidEvent) -> None:
        assert self._producer is not None
        # A rebalance replays the open block and sends its dead letters again (readers
        # dedup by the source header); the metric counts each source offset once.
        if record.offset > self._dead_lettered_through.get(record.partition, -1):
            self._dead_lettered_through[record.partition] = record.offset
            metrics.DEAD_LETTERED.labels(exc.reason).inc()
        source = f"{record.topic}/{record.partition}/{record.offset}"
        headers = [
            ("reason", exc.reason.encode()),
            ("detail", str(exc).encode("utf-8", "replace")[:1000]),
            ("source", source.encode()),
        ]
        future = asyncio.ensure_future(
            self._producer.send(
                self.settings.dead_letter_topic,
                value=record.value,
                key=record.key,
                partition=record.partition % self.settings.partitions,
                headers=headers,
            )
        )
        self._pending.append(future)

    async def _finish_block(self, state: PartitionState, next_block: int) -> None:
        """Flush the finished block completely, commit the next block's start, start afresh."""
        await self._flush(finishing=[state])
        # Forget ids older than the horizon, measured in record time like the decisions.
        state.dedup.expire(state.newest_record_ms)
        start = next_block * self.settings.block_size
        await self._commit(state.partition, start)
        old = state.accumulator
        state.accumulator = BlockAccumulator(
            state.partition,
            next_block,
            self.settings.grace_seconds * 1000,
            old.watermark_ms,
            self.prices,
        )

    async def _commit(self, partition: int, offset: int) -> None:
        assert self._consumer is not None
        tp = TopicPartition(self.settings.usage_topic, partition)
        try:
            await self._consumer.commit({tp: offset})
        except (CommitFailedError, KafkaError) as exc:
            # The partition moved to another worker, which replays the block from its start.
            log.warning("commit of %s at %d failed: %s", tp, offset, exc)

    # Flushing ------------------------------------------------------------------------
    async def _flush(self, finishing: list[PartitionState]) -> None:
        """Send partials and dedup ids of every dirty partition and wait for the acks."""
        producer = self._producer
        if producer is None:
            return
        s = self.settings
        states = finishing or list(self.states.values())
        futures: list[Any] = self._pending
        self._pending = []
        sent_partials = 0
        for state in states:
            acc = state.accumulator
            if acc.dirty or acc.watermark_ms > state.sent_watermark_ms:
                # Every partials partition gets a record, empty where no key routes: each
                # learns this source's watermark in order with its data (the ranker closes
                # a week on the slowest partition and source, aggregations/progress.py).
                records = flush_records(
                    acc.drain(),
                    s.partitions,
                    position=(acc.source, acc.block, acc.end),
                    watermark_ms=acc.watermark_ms,
                )
                for destination, record in records.items():
                    futures.append(
                        await producer.send(s.partials_topic, record, partition=destination)
                    )
                    sent_partials += 1
                state.sent_watermark_ms = acc.watermark_ms
            new_ids = state.dedup.take_new()
            if new_ids:
                record = pack_entries(acc.end, acc.watermark_ms, new_ids)
                futures.append(
                    await producer.send(s.dedup_topic, record, partition=state.partition)
                )
        if futures:
            await asyncio.gather(*futures)
        metrics.PARTIALS_PRODUCED.inc(sent_partials)
        now = time.time()
        for state in states:
            for ts in state.pending_ms:
                metrics.PROCESSING_LATENCY.observe(max(0.0, now - ts / 1000))
            state.pending_ms.clear()

    # Restore ------------------------------------------------------------------------
    async def _start_partition(
        self, tp: TopicPartition, first_offset: int
    ) -> PartitionState | None:
        """State for a partition whose records start at ``first_offset``; None to re-fetch.

        Cumulative block sums are only reproducible from a block's first offset, so a fetch
        that starts mid-block is discarded and the consumer sent back to the block start
        (unless retention already deleted it).
        """
        assert self._consumer is not None
        self.states.pop(tp.partition, None)
        if tp.partition not in self.assigned:
            return None
        block_start = block_of(first_offset, self.settings.block_size) * self.settings.block_size
        if first_offset != block_start:
            log_start = (await self._consumer.beginning_offsets([tp]))[tp]
            if block_start >= log_start:
                log.info("partition %d: rewinding from %d to block start %d",
                         tp.partition, first_offset, block_start)  # fmt: skip
                self._consumer.seek(tp, block_start)
                return None
        state = await self._restore(tp.partition, first_offset)
        if tp.partition not in self.assigned:
            return None
        self.states[tp.partition] = state
        return state

    async def _restore(self, partition: int, first_offset: int) -> PartitionState:
        """Rebuild the dedup memory and watermark of a newly assigned partition."""
        s = self.settings
        horizon_ms = s.dedup_horizon_seconds * 1000
        dedup = Deduplicator(horizon_ms)
        block = block_of(first_offset, s.block_size)
        block_start = block * s.block_size
        watermark = 0
        reader = AIOKafkaConsumer(**s.kafka_client_options(), enable_auto_commit=False)
        await reader.start()
        restored = 0
        try:
            tp = TopicPartition(s.dedup_topic, partition)
            reader.assign([tp])
            since = int(time.time() * 1000) - horizon_ms
            found = await reader.offsets_for_times({tp: since})
            end = (await reader.end_offsets([tp]))[tp]
            start = found[tp].offset if found.get(tp) is not None else end
            reader.seek(tp, start)
            while start < end and await reader.position(tp) < end:
                batch = await reader.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    end_offset, wm, entries = unpack_entries(record.value)
                    if end_offset < block_start and wm > watermark:
                        watermark = wm
                    items = list(entries)
                    dedup.restore(items)
                    restored += len(items)
        finally:
            await reader.stop()
        log.info(
            "partition %d: restored %d ids, watermark %d, replaying from offset %d",
            partition, restored, watermark, first_offset,
        )  # fmt: skip
        accumulator = BlockAccumulator(
            partition, block, s.grace_seconds * 1000, watermark, self.prices
        )
        return PartitionState(partition, accumulator, dedup)
