"""The fold sees every partials record in order, even ones Faust dropped (RELIABILITY.md, bug 18).

A stand-in holds the few fields of Faust's app and consumer the guard reads (the committed
offset, the generation, the gap bookkeeping); the records come from the real broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.types import TP

from aggregations.partials import decode_record, tail_probe
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker.gap_guard import TAIL_IDLE_S, GapGuard, read_range


@dataclass
class StandInConsumer:
    """What GapGuard uses of Faust's consumer."""

    _committed_offset: dict[Any, int | None]
    tps: set[Any]
    highwater_marks: dict[Any, int] = field(default_factory=dict)
    gaps: list[tuple[Any, int, int]] = field(default_factory=list)

    async def _add_gap(self, tp: Any, start: int, end: int) -> None:
        self.gaps.append((tp, start, end))

    def assignment(self) -> set[Any]:
        return self.tps

    async def highwaters(self, *tps: Any) -> dict[Any, int]:
        return {tp: self.highwater_marks[tp] for tp in tps if tp in self.highwater_marks}


@dataclass
class StandInProducer:
    """What GapGuard uses of Faust's producer: one real send per call."""

    settings: Settings

    async def send_and_wait(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int,
        timestamp: float | None,
        headers: Any,
    ) -> None:
        producer = AIOKafkaProducer(**self.settings.kafka_client_options())
        await producer.start()
        try:
            await producer.send_and_wait(topic, value, key=key, partition=partition)
        finally:
            await producer.stop()


@dataclass
class StandInApp:
    """What GapGuard uses of Faust's app."""

    consumer: StandInConsumer
    consumer_generation_id: int = 1
    rebalancing: bool = False
    in_recovery: bool = False
    producer: StandInProducer | None = None


async def _produce(settings: Settings, count: int) -> None:
    producer = AIOKafkaProducer(**settings.kafka_client_options())
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(settings.partials_topic, f"r{i}".encode(), partition=1)
    finally:
        await producer.stop()


async def test_records_that_never_reached_the_fold_are_folded_in_order(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record after a hole: the hole is read from the topic and folded first, the consumer
    may commit past it; a rebalance starts again from the committed offset."""
    await ensure_topics(settings)
    await _produce(settings, 9)
    tp = TP(settings.partials_topic, 1)
    consumer = StandInConsumer({tp: 2}, {tp})
    app = StandInApp(consumer)
    folded: list[bytes] = []

    async def fold(raw: bytes, partition: int) -> None:
        assert partition == 1
        folded.append(raw)

    guard = GapGuard(app, settings, fold)  # type: ignore[arg-type]
    await guard.fold_in_order(b"r5", tp, 5)
    assert folded == [b"r2", b"r3", b"r4", b"r5"]
    assert consumer.gaps == [(tp, 2, 4)]

    await guard.fold_in_order(b"r6", tp, 6)  # in order: nothing to repair
    assert folded[-1] == b"r6" and len(folded) == 5 and len(consumer.gaps) == 1

    await guard.fold_in_order(b"r7", tp, 7)
    await guard.fold_in_order(b"r8", tp, 8)
    assert len(folded) == 7

    # A rebalance: the next record is expected at the committed offset again.
    app.consumer_generation_id = 2
    consumer._committed_offset[tp] = 8
    await guard.fold_in_order(b"r8", tp, 8)
    assert folded[-1] == b"r8" and len(consumer.gaps) == 1


async def test_records_dropped_before_a_never_committed_partitions_first_are_folded(
    settings: Settings,
) -> None:
    """A partition never committed: the guard expects its log start, so records Faust dropped
    before the first one it delivered are read and folded (bug 22: Faust's own check has no
    committed offset to hold the hole against, and committed past it)."""
    await ensure_topics(settings)
    await _produce(settings, 5)
    tp = TP(settings.partials_topic, 1)
    consumer = StandInConsumer({}, {tp})
    folded: list[bytes] = []

    async def fold(raw: bytes, partition: int) -> None:
        folded.append(raw)

    guard = GapGuard(StandInApp(consumer), settings, fold)  # type: ignore[arg-type]
    await guard.fold_in_order(b"r3", tp, 3)
    assert folded == [b"r0", b"r1", b"r2", b"r3"]
    assert consumer.gaps == [(tp, 0, 2)]
    await guard.fold_in_order(b"r4", tp, 4)
    assert folded[-1] == b"r4" and len(consumer.gaps) == 1


async def test_a_committed_offset_faust_has_not_learned_yet_is_asked_of_the_broker(
    settings: Settings,
) -> None:
    """A record that arrives before Faust sought its newly assigned partition: the guard asks
    the broker for the group's committed offset and repairs only from there (records before
    it were folded and committed by the partition's previous owner)."""
    await ensure_topics(settings)
    await _produce(settings, 6)
    committer = AIOKafkaConsumer(
        **settings.kafka_client_options(), group_id=settings.app_id, enable_auto_commit=False
    )
    await committer.start()
    try:
        partition = TopicPartition(settings.partials_topic, 1)
        committer.assign([partition])
        await committer.commit({partition: 3})
    finally:
        await committer.stop()
    tp = TP(settings.partials_topic, 1)
    consumer = StandInConsumer({}, {tp})
    folded: list[bytes] = []

    async def fold(raw: bytes, partition: int) -> None:
        folded.append(raw)

    guard = GapGuard(StandInApp(consumer), settings, fold)  # type: ignore[arg-type]
    await guard.fold_in_order(b"r5", tp, 5)
    assert folded == [b"r3", b"r4", b"r5"]
    assert consumer.gaps == [(tp, 3, 4)]


async def _partition_end(settings: Settings, partition: int) -> int:
    reader = AIOKafkaConsumer(**settings.kafka_client_options())
    await reader.start()
    try:
        tp = TopicPartition(settings.partials_topic, partition)
        return int((await reader.end_offsets([tp]))[tp])
    finally:
        await reader.stop()


async def test_a_lost_tail_is_revealed_by_a_probe_and_folded_before_it(settings: Settings) -> None:
    """Records at the end of a partition that never reached the fold, with nothing produced
    after them (bug 25): once the fold stood still on the partition for TAIL_IDLE_S while its
    end is ahead, check_tails appends a probe; the probe reaches the fold, which reads the
    tail from the topic and folds it first. Never while the fold moves, while the worker
    rebalances or recovers, or twice in one idle period."""
    await ensure_topics(settings)
    await _produce(settings, 6)
    tp = TP(settings.partials_topic, 1)
    elsewhere = TP(settings.usage_topic, 1)
    consumer = StandInConsumer({tp: 0}, {tp, elsewhere})
    consumer.highwater_marks = {tp: 6, elsewhere: 50}
    app = StandInApp(consumer, producer=StandInProducer(settings))
    now = [1000.0]
    folded: list[bytes] = []

    async def fold(raw: bytes, partition: int) -> None:
        folded.append(raw)

    guard = GapGuard(app, settings, fold, clock=lambda: now[0])  # type: ignore[arg-type]
    for offset in range(3):  # records 3..5 are the lost tail
        await guard.fold_in_order(f"r{offset}".encode(), tp, offset)

    now[0] += TAIL_IDLE_S - 1
    await guard.check_tails()
    assert await _partition_end(settings, 1) == 6, "probed while the fold had just moved"

    now[0] += 2
    app.rebalancing = True
    await guard.check_tails()
    app.rebalancing = False
    await guard.check_tails()
    assert await _partition_end(settings, 1) == 6, "probed during or right after a rebalance"

    now[0] += TAIL_IDLE_S
    await guard.check_tails()
    await guard.check_tails()
    assert await _partition_end(settings, 1) == 7, "one probe per idle period"

    probe = (await read_range(settings, settings.partials_topic, 1, 6, 7))[0][1]
    assert decode_record(probe) == decode_record(tail_probe())
    consumer.highwater_marks[tp] = 7
    await guard.fold_in_order(probe, tp, 6)
    assert folded == [b"r0", b"r1", b"r2", b"r3", b"r4", b"r5", probe]
    assert consumer.gaps == [(tp, 3, 5)]

    now[0] += 10 * TAIL_IDLE_S
    await guard.check_tails()
    assert await _partition_end(settings, 1) == 7, "probed a partition folded to its end"


async def test_a_partition_that_delivered_nothing_since_a_rebalance_is_probed(
    settings: Settings,
) -> None:
    """A partition whose records were all dropped after a rebalance: nothing reached the fold
    in this generation, so the fold's position is the committed offset (none: 0), and the
    probe comes TAIL_IDLE_S after the new generation was first seen."""
    await ensure_topics(settings)
    await _produce(settings, 2)
    tp = TP(settings.partials_topic, 1)
    consumer = StandInConsumer({}, {tp})
    consumer.highwater_marks = {tp: 2}
    app = StandInApp(consumer, consumer_generation_id=7, producer=StandInProducer(settings))
    now = [50.0]
    folded: list[bytes] = []

    async def fold(raw: bytes, partition: int) -> None:
        folded.append(raw)

    guard = GapGuard(app, settings, fold, clock=lambda: now[0])  # type: ignore[arg-type]
    await guard.check_tails()  # sees generation 7 for the first time: the idle period starts
    now[0] += TAIL_IDLE_S + 1
    await guard.check_tails()
    assert await _partition_end(settings, 1) == 3
    probe = (await read_range(settings, settings.partials_topic, 1, 2, 3))[0][1]
    await guard.fold_in_order(probe, tp, 2)
    assert folded == [b"r0", b"r1", probe]
    assert consumer.gaps == [(tp, 0, 1)]
