"""Stage 1's pure per-event work, timed in-process without Kafka: what one core can fold.

The same functions the pre-aggregator's ``_fold_records`` calls, applied cumulatively to
events of the benchmark dataset held in memory: ``orjson.loads`` alone (the ceiling's
work), then ``decode_fields`` (validation), then the id dedup, then catalog lookup plus
``BlockAccumulator.add_many`` (one per run of 20,000 events, as per fetch), then the flush
(drain, route, encode) every 20,000 events.
Keep it in step with ``PreAggregator._fold_records`` when that changes.

The row "as _fold_records" is the whole of stage 1's work per fetch the way the worker
does it: ``decode_many`` on fetches of 20,000 records, then per record the retention check
against the moving watermark, the key check and the id dedup, then one ``add_many`` per
fetch and block, and at each block end (20,000 offsets) the block's flush (partials for
every partials partition, the dedup record) and a new accumulator. It mirrors
``PreAggregator._fold_records`` and ``_finish_block`` statement by statement; keep them in
step. ``python -m bench.stage1_micro`` prints every row.

Rows starting with "vs" are not cumulative: they set ``decode_many``
(``aggregations/batch_decode.py``, one msgspec parse per run of records) on batches of
20,000 events, as one fetch would hand them over, against ``decode_fields`` record by
record, on the clean events and with one bad record per 1,000 (each a different kind of
rejection that breaks msgspec's parse of its run).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from aggregations.batch_decode import decode_many
from aggregations.clock import watermark_cap
from aggregations.dedup import Deduplicator, pack_entries
from aggregations.events import DEFAULT_LIMITS, CountedFields, InvalidEvent, decode_fields
from aggregations.partials import (
    BlockAccumulator,
    block_of,
    encode_partials,
    flush_records,
    group_by_partition,
)
from bench.dataset import DatasetSpec, Expected, generate
from bench.progress import say
from streams.prices import load_prices
from streams.worker.catalog import load_catalog

#: Records per decode_many call: the most one getmany of stage 1 returns (max_batch).
BATCH = 20_000
#: Bad records spread one per 1,000 (at offsets 500, 1500, ...), kinds in turn.
BAD_RECORDS = (
    b'{"event_id":"bad","ts":1794787200000,"model":"m","prompt_tokens":-1,"completion_tokens":1}',
    b'{"event_id":"bad","ts":1794787200000,"model":"m","prompt_tokens":"12","completion_tokens":1}',
    b'{"event_id":"bad","model":"m","prompt_tokens":1,"completion_tokens":1}',
    b'{"event_id":"bad","ts":1794787200000,"model":"m","prompt_tokens":1,"completion',
    b'{"event_id":"bad\xff","ts":1794787200000,"model":"m","prompt_tokens":1,"completion_tokens":1}',
)


def with_bad_records(values: list[bytes], every: int = 1000) -> list[bytes]:
    """``values`` with one record in ``every`` replaced by a bad one (kinds in turn)."""
    out = list(values)
    for n, at in enumerate(range(every // 2, len(out), every)):
        out[at] = BAD_RECORDS[n % len(BAD_RECORDS)]
    return out


#: Offsets per block and partials partitions, as the worker's defaults.
BLOCK_SIZE = 20_000
PARTITIONS = 8


@dataclass(slots=True)
class _Record:
    """The attributes of aiokafka's ConsumerRecord that stage 1 reads."""

    offset: int
    key: bytes | None
    value: bytes
    timestamp: int


@dataclass
class StepCost:
    """Cumulative cost per event up to and including one step."""

    step: str
    us_per_event: float

    @property
    def events_per_s(self) -> float:
        """What one core could do if this were all the work."""
        return 1e6 / self.us_per_event if self.us_per_event > 0 else 0.0


def _time(fn: Callable[[], None], events: int, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best / events * 1e6


def run_stage1_micro(
    events: int = 200_000, only: list[str] | None = None, repeat: int = 3
) -> list[StepCost]:
    """Microseconds per event of each cumulative step of stage 1 (best of three).

    ``only``: run just the rows whose label contains one of these texts.
    """
    now_ms = int(time.time() * 1000)
    spec = DatasetSpec(events=events, models=500, weeks=4, partitions=8, seed=5)
    expected = Expected(topic="", events=events, partitions=8)
    values = [v for chunk in generate(spec, expected, now_ms, "m-") for _, v in chunk]
    catalog = load_catalog(None)
    prices = load_prices(None)
    limits = DEFAULT_LIMITS
    loads = orjson.loads

    def only_loads() -> None:
        for raw in values:
            loads(raw)

    def validate() -> None:
        for raw in values:
            decode_fields(raw, now_ms=now_ms, watermark_ms=None, limits=limits)

    def dedup() -> None:
        seen = Deduplicator(86_400_000)
        for offset, raw in enumerate(values):
            event_id = decode_fields(raw, now_ms=now_ms, watermark_ms=None, limits=limits)[0]
            seen.is_duplicate(event_id, offset, now_ms)

    def fold(flush: bool) -> Callable[[], None]:
        def run() -> None:
            seen = Deduplicator(86_400_000)
            acc = BlockAccumulator(0, 0, 3_600_000, prices=prices)
            describe = catalog.describer()

            counted: list[CountedFields] = []
            for offset, raw in enumerate(values):
                fields = decode_fields(raw, now_ms=now_ms, watermark_ms=None, limits=limits)
                if not seen.is_duplicate(fields[0], offset, now_ms):
                    counted.append(fields)
                if offset % BATCH == BATCH - 1 or offset == len(values) - 1:
                    acc.add_many(counted, offset, describe)
                    counted = []
                if flush and offset % 20_000 == 19_999:
                    for partials in group_by_partition(acc.drain(), 8).values():
                        encode_partials(partials)
                    seen.take_new()

        return run

    def per_record(records: list[bytes]) -> Callable[[], None]:
        def run() -> None:
            for raw in records:
                try:  # noqa: SIM105 - as _fold_records does; suppress() costs more
                    decode_fields(raw, now_ms=now_ms, watermark_ms=None, limits=limits)
                except InvalidEvent:
                    pass

        return run

    def batched(records: list[bytes]) -> Callable[[], None]:
        def run() -> None:
            for first in range(0, len(records), BATCH):
                decode_many(
                    records[first : first + BATCH], now_ms=now_ms, watermark_ms=None, limits=limits
                )

        return run

    records = [
        _Record(offset, key, value, now_ms)
        for offset, (key, value) in enumerate(
            kv for chunk in generate(spec, Expected(topic="", events=events, partitions=8),
                                     now_ms, "m-") for kv in chunk
        )
    ]  # fmt: skip

    def as_fold_records() -> None:
        # PreAggregator._fold_records, one partition, fetches of BATCH records.
        describe = catalog.describer()

        dedup_ = Deduplicator(86_400_000)
        acc = BlockAccumulator(0, 0, 3_600_000, 0, prices)
        retention_ms = 4 * 7 * 86_400_000
        for first in range(0, len(records), BATCH):
            batch = records[first : first + BATCH]
            acc.watermark_cap_ms = cap = watermark_cap(now_ms)
            block_end = (acc.block + 1) * BLOCK_SIZE
            is_duplicate = dedup_.is_duplicate_bytes
            verdicts = decode_many(
                [record.value for record in batch], now_ms=now_ms, watermark_ms=None, limits=limits
            )
            run: list[CountedFields] = []
            last = -1
            watermark = acc.watermark_ms
            for record, verdict in zip(batch, verdicts, strict=True):
                offset = record.offset
                if offset >= block_end:
                    if last >= 0:
                        acc.add_many(run, last, describe)
                        run = []
                    acc = _finish_block(acc, dedup_, block_of(offset, BLOCK_SIZE))
                    acc.watermark_cap_ms = cap
                    block_end = (acc.block + 1) * BLOCK_SIZE
                last = offset
                if watermark and (
                    isinstance(verdict, InvalidEvent) or verdict[1] < watermark - retention_ms
                ):
                    verdict = _judge(record.value, now_ms, watermark)
                if isinstance(verdict, InvalidEvent):
                    continue
                event_id = verdict[0]
                id_bytes = record.key
                if id_bytes is None or id_bytes != event_id.encode():
                    raise AssertionError("the dataset keys every record by its id")
                if is_duplicate(id_bytes, offset, record.timestamp):
                    continue
                run.append(verdict)
                ts_ms = verdict[1]
                if ts_ms > watermark:
                    watermark = ts_ms if ts_ms <= cap else max(watermark, cap)
            if last >= 0:
                acc.add_many(run, last, describe)
        _finish_block(acc, dedup_, acc.block + 1)

    def _judge(raw: bytes, now: int, watermark: int) -> Any:
        try:
            return decode_fields(raw, now_ms=now, watermark_ms=watermark, limits=limits)
        except InvalidEvent as exc:
            return exc

    def _finish_block(acc: BlockAccumulator, seen: Deduplicator, block: int) -> BlockAccumulator:
        # PreAggregator._flush for one finishing partition, then _finish_block.
        flush_records(
            acc.drain(),
            PARTITIONS,
            position=(acc.source, acc.block, acc.end),
            watermark_ms=acc.watermark_ms,
        )
        pack_entries(acc.end, acc.watermark_ms, seen.take_new())
        seen.expire(now_ms)
        return BlockAccumulator(acc.source, block, acc.grace_ms, acc.watermark_ms, acc.prices)

    bad = with_bad_records(values)
    steps = [
        ("orjson.loads only (the ceiling's work)", only_loads),
        ("+ decode_fields validation", validate),
        ("+ dedup (blake2b digest, dict)", dedup),
        (f"+ catalog lookup (per bucket) + BlockAccumulator.add_many per {BATCH:,}", fold(False)),
        ("+ flush: drain, route, encode partials every 20k", fold(True)),
        (f"as _fold_records: fetches of {BATCH:,}, blocks of {BLOCK_SIZE:,}", as_fold_records),
        (f"vs decode_many in batches of {BATCH:,} (instead of decode_fields)", batched(values)),
        ("vs decode_fields, 1 bad record per 1,000", per_record(bad)),
        (f"vs decode_many in batches of {BATCH:,}, 1 bad record per 1,000", batched(bad)),
    ]
    out = []
    for label, fn in steps:
        if only and not any(text in label for text in only):
            continue
        if repeat <= 0:
            continue
        cost = StepCost(label, _time(fn, len(values), repeat))
        out.append(cost)
        say(f"  stage 1 micro: {label}: {cost.us_per_event:.2f} µs/event")
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.stage1_micro [--events N] [--repeat R] [ROW TEXT ...]``.

    ``--repeat 0`` builds the data and runs nothing: under callgrind, a run with
    ``--repeat 1`` minus one with ``--repeat 0``, divided by the events, is the instructions
    per event of the rows chosen, whatever the machine's load.
    """
    parser = argparse.ArgumentParser(prog="python -m bench.stage1_micro")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per row, best kept")
    parser.add_argument("rows", nargs="*", help="run only rows whose label contains one")
    args = parser.parse_args(argv)
    run_stage1_micro(args.events, only=args.rows or None, repeat=args.repeat)


if __name__ == "__main__":
    main(sys.argv[1:])
