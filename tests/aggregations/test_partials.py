"""Stage 1 as pure code: cumulative block sums, lateness, routing and the wire format."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregations.partials import (
    BlockAccumulator,
    PartialsRecord,
    decode_partials,
    decode_record,
    encode_partials,
    flush_records,
    group_by_partition,
    partition_for,
)
from aggregations.prices import PriceBook, event_cost
from aggregations.totals import NO_APP, Partial, split_key
from aggregations.weeks import DAY_MS, day_id, week_end_ms, week_id, week_start_ms

W47 = week_start_ms("2026-W47")
HOUR = 3_600_000


def add(acc: BlockAccumulator, offset: int, ts: int, model: str = "m1", tokens: int = 100) -> bool:
    """Fold one event of ``tokens`` prompt tokens."""
    return acc.add(offset, ts, model, "V", "CN", "Model", tokens, 0, 1)


def test_accumulator_sums_every_dimension() -> None:
    """One event lands in model, country, vendor, app and total keys of its week and day;
    an event without an app counts for the app NO_APP ("")."""
    acc = BlockAccumulator(source=3, block=0, grace_ms=HOUR)
    add(acc, 0, W47 + HOUR)
    add(acc, 1, W47 + 2 * HOUR, tokens=50)
    partials = {p.key: p for p in acc.drain()}
    assert set(partials) == {
        "model:2026-W47:m1",
        "country:2026-W47:CN",
        "vendor:2026-W47:V",
        f"app:2026-W47:{NO_APP}",
        "total:2026-W47:all",
    }
    assert partials["app:2026-W47:"].days == partials["total:2026-W47:all"].days
    assert partials["app:2026-W47:"].meta is None
    total = partials["total:2026-W47:all"]
    # Without prices every token is unpriced: cost 0, unpriced 150 (never "cost 0" alone).
    assert total.days == {"2026-11-16": [150, 150, 0, 2, 0, 0, 150]}
    assert (total.source, total.block, total.end) == (3, 0, 1)
    assert partials["model:2026-W47:m1"].meta == ("Model", "V", "CN")


def test_apps_are_counted_apart_and_add_up_to_the_total() -> None:
    """Events with an app count for it, the others for NO_APP: the app keys of a week add
    up to its total, in every count; an app named like another dimension's key or holding
    ':' is its own member."""
    acc = BlockAccumulator(source=0, block=0, grace_ms=HOUR)
    apps = ["support-bot", NO_APP, "coder", "support-bot", "a:b:c", NO_APP, "model:x"]
    for offset, app in enumerate(apps):
        acc.add(offset, W47 + offset * HOUR, "m1", "V", "CN", "M", 10 + offset, 1, 2, app)
    partials = {p.key: p for p in acc.drain()}
    app_days = {
        split_key(k)[2]: p.days["2026-11-16"] for k, p in partials.items() if k[:4] == "app:"
    }
    assert app_days == {
        "support-bot": [25, 23, 2, 4, 0, 0, 25],
        NO_APP: [28, 26, 2, 4, 0, 0, 28],
        "coder": [13, 12, 1, 2, 0, 0, 13],
        "a:b:c": [15, 14, 1, 2, 0, 0, 15],
        "model:x": [17, 16, 1, 2, 0, 0, 17],
    }
    total = partials["total:2026-W47:all"].days["2026-11-16"]
    assert [sum(c[i] for c in app_days.values()) for i in range(7)] == total


def test_drain_is_cumulative_within_a_block() -> None:
    """A second drain carries the block's running sum, not the increment."""
    acc = BlockAccumulator(source=0, block=0, grace_ms=HOUR)
    add(acc, 0, W47)
    acc.drain()
    assert not acc.dirty
    add(acc, 1, W47)
    (total,) = [p for p in acc.drain() if p.key.startswith("total")]
    assert total.days["2026-11-16"][0] == 200
    assert total.end == 1


def test_late_event_is_flagged_after_week_end_plus_grace() -> None:
    """An event for a week the watermark left more than the grace ago counts as late."""
    acc = BlockAccumulator(source=0, block=0, grace_ms=HOUR)
    add(acc, 0, week_end_ms("2026-W47") + HOUR - 1)
    assert add(acc, 1, W47 + HOUR) is False
    add(acc, 2, week_end_ms("2026-W47") + HOUR)
    assert add(acc, 3, W47 + HOUR) is True
    total = next(p for p in acc.drain() if p.key == "total:2026-W47:all")
    assert total.days["2026-11-16"][4] == 1


def test_skip_advances_the_end_offset() -> None:
    """Invalid or duplicate records still move the block's end position."""
    acc = BlockAccumulator(source=0, block=0, grace_ms=HOUR)
    add(acc, 0, W47)
    acc.skip(5)
    assert acc.drain()[0].end == 5


def test_partition_for_is_stable_and_in_range() -> None:
    """The routing hash is deterministic (crc32) and within the partition count."""
    assert partition_for("total:2026-W47:all", 8) == partition_for("total:2026-W47:all", 8)
    assert {partition_for(f"model:2026-W47:m{i}", 8) for i in range(200)} == set(range(8))


def test_wire_round_trip() -> None:
    """encode_partials/decode_partials preserve every field."""
    acc = BlockAccumulator(source=2, block=7, grace_ms=HOUR)
    add(acc, 700, W47)
    partials = acc.drain()
    for group in group_by_partition(partials, 4).values():
        assert decode_partials(encode_partials(group)) == group


def test_wire_carries_the_source_watermark() -> None:
    """The source's watermark travels with the record; a record without it decodes as None."""
    acc = BlockAccumulator(source=2, block=7, grace_ms=HOUR)
    add(acc, 700, W47 + HOUR)
    partials = acc.drain()
    record = decode_record(encode_partials(partials, acc.watermark_ms))
    assert record == PartialsRecord(2, 7, 700, W47 + HOUR, partials)
    assert decode_record(encode_partials(partials)).watermark_ms is None
    # A record of a version before the watermark existed.
    old = b'{"p":1,"b":0,"e":5,"items":[["total:2026-W47:all",{"2026-11-16":[1,1,0,1,0]},9,null]]}'
    decoded = decode_record(old)
    assert (decoded.source, decoded.block, decoded.end, decoded.watermark_ms) == (1, 0, 5, None)
    assert decoded.partials == decode_partials(old)
    assert decoded.partials[0].days == {"2026-11-16": [1, 1, 0, 1, 0]}


def test_empty_record_needs_and_keeps_its_position() -> None:
    """A watermark-only record has no partials to take the position from."""
    raw = encode_partials([], W47, position=(3, 4, 4099))
    assert decode_record(raw) == PartialsRecord(3, 4, 4099, W47, [])
    assert decode_partials(raw) == []
    with pytest.raises(ValueError, match="position"):
        encode_partials([], W47)


def test_flush_sends_one_record_to_every_partition() -> None:
    """Every partials partition gets the watermark; the partials go where their keys route."""
    acc = BlockAccumulator(source=1, block=2, grace_ms=HOUR)
    add(acc, 200, W47 + HOUR)
    add(acc, 201, W47 + 3 * HOUR, model="m2")
    partials = acc.drain()
    records = flush_records(partials, 8, position=(1, 2, 201), watermark_ms=acc.watermark_ms)
    assert set(records) == set(range(8))
    decoded = {x: decode_record(raw) for x, raw in records.items()}
    assert {(r.source, r.block, r.end, r.watermark_ms) for r in decoded.values()} == {
        (1, 2, 201, W47 + 3 * HOUR)
    }
    grouped = group_by_partition(partials, 8)
    for x, record in decoded.items():
        assert record.partials == grouped.get(x, [])
    assert sum(not r.partials for r in decoded.values()) == 8 - len(grouped)


#: m1 priced all along, at a price that changes on W47's Thursday; m2 priced from W48 on
#: (unpriced before); m3 never priced.
PRICES = PriceBook.from_mapping(
    {
        "prices": [
            {"model": "m1", "from": "2026-01-01", "input": "0.27", "output": "1.10",
             "cached_input": "0.07"},
            {"model": "m1", "from": "2026-11-19", "input": "0.123457", "output": "3"},
            {"model": "m2", "from": "2026-11-23", "input": "15", "output": "75",
             "cached_input": "1.5"},
        ]
    }
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 20 * 86_400_000),  # event time within three weeks
            st.sampled_from(["m1", "m2", "m3"]),
            st.sampled_from(["CN", "US"]),
            st.integers(0, 10_000),
            st.booleans(),  # drain after this event
            st.sampled_from([NO_APP, "chat", "coder"]),
            st.integers(0, 12_000),  # cached tokens (more than the prompt counts as it)
        ),
        min_size=1,
        max_size=60,
    )
)
def test_drained_partials_equal_naive_cumulative_sums(
    events: list[tuple[int, str, str, int, bool, str, int]],
) -> None:
    """At every drain, each touched key carries exactly the block's running sums so far:
    tokens, counts, and the cost of the priced events (each rounded once, by event_cost,
    at its day's price) next to the tokens of the unpriced ones."""
    acc = BlockAccumulator(source=0, block=0, grace_ms=HOUR, prices=PRICES)
    naive: dict[str, dict[str, list[int]]] = defaultdict(dict)
    latest: dict[str, Partial] = {}
    for offset, (ts, model, country, tokens, drain, app, cached) in enumerate(events):
        late = acc.add(offset, W47 + ts, model, "V", country, "Model", tokens, 1, 1, app, cached)
        week, day = week_id(W47 + ts), day_id(W47 + ts)
        rates = PRICES.rates(model, (W47 + ts) // DAY_MS)
        cost = event_cost(tokens, 1, cached, rates) if rates else 0
        unpriced = 0 if rates else tokens + 1
        for key in (f"model:{week}:{model}", f"country:{week}:{country}",
                    f"vendor:{week}:V", f"app:{week}:{app}", f"total:{week}:all"):  # fmt: skip
            bucket = naive[key].setdefault(day, [0, 0, 0, 0, 0, 0, 0])
            for i, value in enumerate((tokens + 1, tokens, 1, 1, int(late), cost, unpriced)):
                bucket[i] += value
        if drain or offset == len(events) - 1:
            latest.update({p.key: p for p in acc.drain()})
    assert {k: dict(p.days) for k, p in latest.items()} == dict(naive)


def test_cost_is_rounded_once_per_event_half_to_even() -> None:
    """Each event's cost is rounded to the micro-dollar once, half to even; the sums are
    sums of those integers, and a cached prompt token costs the cached-input price."""
    book = PriceBook.from_mapping(
        {"prices": [{"model": "m1", "from": "2026-01-01", "input": "0.5", "output": "1.5",
                     "cached_input": "0.25"}]}
    )  # fmt: skip
    acc = BlockAccumulator(source=0, block=0, grace_ms=HOUR, prices=book)
    # 1 prompt token at $0.5/M is 0.5 micro-dollars: rounded to 0 (even), 3 tokens (1.5) to 2,
    # 5 tokens (2.5) to 2.
    acc.add(0, W47, "m1", "V", "US", "M", 1, 0, 1)
    acc.add(1, W47, "m1", "V", "US", "M", 3, 0, 1)
    acc.add(5, W47, "m1", "V", "US", "M", 5, 0, 1)
    # 4 prompt tokens of which 2 cached, 1 completion: 2 x 0.5 + 2 x 0.25 + 1.5 = 3.
    acc.add(2, W47, "m1", "V", "US", "M", 4, 1, 1, NO_APP, 2)
    # A model without a price: its tokens are unpriced, its cost is not 0 but unknown.
    acc.add(3, W47, "m9", "V", "US", "M", 7, 3, 1)
    partials = {p.key: p.days["2026-11-16"] for p in acc.drain()}
    assert partials["model:2026-W47:m1"][5:] == [0 + 2 + 2 + 3, 0]
    assert partials["model:2026-W47:m9"][5:] == [0, 10]
    assert partials["total:2026-W47:all"][5:] == [7, 10]
    assert partials["app:2026-W47:"][5:] == [7, 10]
