"""BlockAccumulator.add_many folds a run of events exactly as add() does one by one.

Stage 1 folds each fetched batch with add_many (summed per bucket first); the partials it
drains must be the ones the per-event path drained, to the byte: the cumulative sums are
compared across replays and workers, so any difference would count tokens twice or not at
all.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregations.catalog import ModelInfo
from aggregations.events import CountedFields
from aggregations.partials import BlockAccumulator, flush_records
from aggregations.totals import NO_APP, Partial
from aggregations.weeks import DAY_MS, week_start_ms
from tests.aggregations.test_partials import PRICES

W47 = week_start_ms("2026-W47")
HOUR = 3_600_000
SOURCE = 3


def describe(model: str) -> ModelInfo:
    """A catalog entry per model (the worker's catalog gives one name per model too)."""
    return ModelInfo(id=model, name=f"Name {model}", vendor=f"vendor-{model}", country="XX")


@dataclass(frozen=True)
class Record:
    """One usage record: its offset, and its verdict (None: not counted, i.e. invalid,
    rerouted or a duplicate, which stage 1 only skips)."""

    offset: int
    verdict: CountedFields | None


#: What a drain gave: block, end, watermark, the partials and the records a flush sends.
Drained = tuple[int, int, int, list[Partial], dict[int, bytes]]


def drained(acc: BlockAccumulator) -> Drained:
    """Drain ``acc`` as a flush does, with the records it would send."""
    partials = acc.drain()
    records = flush_records(
        partials, 4, position=(acc.source, acc.block, acc.end), watermark_ms=acc.watermark_ms
    )
    return acc.block, acc.end, acc.watermark_ms, partials, records


def per_event(
    batches: list[tuple[list[Record], int, bool]], block_size: int, grace: int, watermark: int
) -> tuple[list[Drained], int, int]:
    """The per-event path: add() per counted record, skip() per other, as stage 1 did."""
    first = batches[0][0][0].offset // block_size
    acc = BlockAccumulator(SOURCE, first, grace, watermark, PRICES)
    out: list[Drained] = []
    late = tokens = 0
    for records, cap, drain in batches:
        acc.watermark_cap_ms = cap
        for record in records:
            block = record.offset // block_size
            if block != acc.block:
                out.append(drained(acc))
                acc = BlockAccumulator(SOURCE, block, grace, acc.watermark_ms, PRICES)
                acc.watermark_cap_ms = cap
            if record.verdict is None:
                acc.skip(record.offset)
                continue
            _, ts, model, prompt, completion, calls, vendor, country, app, cached = record.verdict
            info = describe(model)
            late += acc.add(
                record.offset,
                ts,
                model,
                vendor or info.vendor,
                country or info.country,
                info.name,
                prompt,
                completion,
                calls,
                app or NO_APP,
                cached,
            )
            tokens += prompt + completion
        if drain:
            out.append(drained(acc))
    out.append(drained(acc))
    return out, late, tokens


def batched(
    batches: list[tuple[list[Record], int, bool]], block_size: int, grace: int, watermark: int
) -> tuple[list[Drained], int, int]:
    """The batch path: one add_many per run of a batch within one block."""
    first = batches[0][0][0].offset // block_size
    acc = BlockAccumulator(SOURCE, first, grace, watermark, PRICES)
    out: list[Drained] = []
    late = tokens = 0
    for records, cap, drain in batches:
        acc.watermark_cap_ms = cap
        run: list[CountedFields] = []
        last = -1
        for record in records:
            block = record.offset // block_size
            if block != acc.block:
                if last >= 0:
                    found = acc.add_many(run, last, describe)
                    late, tokens = late + found[0], tokens + found[1]
                    run, last = [], -1
                out.append(drained(acc))
                acc = BlockAccumulator(SOURCE, block, grace, acc.watermark_ms, PRICES)
                acc.watermark_cap_ms = cap
            if record.verdict is not None:
                run.append(record.verdict)
            last = record.offset
        if last >= 0:
            found = acc.add_many(run, last, describe)
            late, tokens = late + found[0], tokens + found[1]
        if drain:
            out.append(drained(acc))
    out.append(drained(acc))
    return out, late, tokens


WEEK_MS = 7 * DAY_MS
#: Event times where a late flag or the watermark cap changes: week ends, plus or minus the
#: grace periods below, and a millisecond either side.
_EDGES = sorted(
    {W47 + week * WEEK_MS + grace + nudge
     for week in (-1, 0, 1, 2) for grace in (0, HOUR, 2 * DAY_MS) for nudge in (-1, 0, 1)}
)  # fmt: skip
#: Four weeks around W47: with the watermark ahead, earlier weeks' events are late.
_TIME = st.one_of(st.integers(W47 - 10 * DAY_MS, W47 + 18 * DAY_MS), st.sampled_from(_EDGES))

_EVENT = st.tuples(
    _TIME,
    st.sampled_from(["m1", "m2", "m3"]),  # m1 priced (price changes), m2 from W48, m3 never
    st.sampled_from([None, "", "V", "W"]),  # vendor (missing: the catalog's)
    st.sampled_from([None, "", "US", "CN"]),  # country
    st.sampled_from([None, "", "chat", "coder"]),  # app (missing: NO_APP)
    st.integers(0, 5_000),  # prompt
    st.integers(0, 3_000),  # completion
    st.integers(1, 3),  # calls
    st.one_of(st.just(0), st.integers(0, 6_000)),  # cached (above prompt counts as prompt)
    st.integers(1, 3),  # offset gap (Kafka offsets may skip, e.g. transaction markers)
    st.integers(0, 5),  # 0: not counted (invalid, rerouted or duplicate)
)


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(_EVENT, min_size=1, max_size=80),
    cuts=st.lists(st.integers(1, 80), max_size=8),
    block_size=st.integers(1, 40),
    first_offset=st.integers(0, 100),
    grace=st.sampled_from([0, HOUR, 2 * DAY_MS]),
    watermark=st.one_of(st.just(0), _TIME),
    caps=st.lists(st.one_of(st.just(1 << 62), _TIME), min_size=1),
    drains=st.lists(st.booleans()),
)
def test_add_many_drains_what_add_per_event_drained(
    events: list[tuple[int, str, str | None, str | None, str | None, int, int, int, int, int, int]],
    cuts: list[int],
    block_size: int,
    first_offset: int,
    grace: int,
    watermark: int,
    caps: list[int],
    drains: list[bool],
) -> None:
    """Random events, batch splits, blocks, caps, drains: identical partials, wire records,
    late counts, tokens, ends and watermarks."""
    records: list[Record] = []
    offset = first_offset
    for n, (
        ts,
        model,
        vendor,
        country,
        app,
        prompt,
        completion,
        calls,
        cached,
        gap,
        kind,
    ) in enumerate(events):
        verdict: CountedFields | None = (
            (f"id-{n}", ts, model, prompt, completion, calls, vendor, country, app, cached)
            if kind
            else None
        )
        records.append(Record(offset, verdict))
        offset += gap
    bounds = sorted({0, len(records), *(c for c in cuts if c < len(records))})
    batches = [
        (
            records[start:stop],
            caps[n % len(caps)],
            drains[n] if n < len(drains) else False,
        )
        for n, (start, stop) in enumerate(pairwise(bounds))
    ]
    expected = per_event(batches, block_size, grace, watermark)
    assert batched(batches, block_size, grace, watermark) == expected


def test_add_many_counts_an_event_late_against_the_watermark_at_that_event() -> None:
    """The watermark moves within a run: an event of W46 is on time before the run reaches
    W47 + grace, late after, in the same call."""
    acc = BlockAccumulator(SOURCE, 0, HOUR, 0, PRICES)
    old = W47 - DAY_MS
    run: list[CountedFields] = [
        ("a", old, "m1", 10, 1, 1, None, None, None, 0),
        ("b", W47 + 2 * HOUR, "m1", 10, 1, 1, None, None, None, 0),
        ("c", old, "m1", 10, 1, 1, None, None, None, 0),
    ]
    assert acc.add_many(run, 7, describe) == (1, 33)
    assert (acc.end, acc.watermark_ms) == (7, W47 + 2 * HOUR)
    days = {p.key: p.days for p in acc.drain()}
    assert days["model:2026-W46:m1"]["2026-11-15"][4] == 1  # LATE: one of its two events


def test_add_many_late_at_the_exact_edge() -> None:
    """Late means watermark >= week end + grace, to the millisecond, for the last
    millisecond of a week too (add_many skips the lookup only for events that cannot be)."""
    for watermark, late in ((W47 + HOUR, 1), (W47 + HOUR - 1, 0)):
        acc = BlockAccumulator(SOURCE, 0, HOUR, watermark, PRICES)
        run: list[CountedFields] = [("a", W47 - 1, "m1", 10, 1, 1, None, None, None, 0)]
        assert acc.add_many(run, 0, describe) == (late, 11)
        reference = BlockAccumulator(SOURCE, 0, HOUR, watermark, PRICES)
        assert reference.add(0, W47 - 1, "m1", "vendor-m1", "XX", "Name m1", 10, 1, 1) == late
        assert acc.drain() == reference.drain()
