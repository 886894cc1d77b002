"""The ranker's state records: keys, values, and the latest-value-wins fold."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregations.ranker_state import (
    RankerState,
    Record,
    closed_record,
    decode_top,
    encode_top,
    finalized_record,
    late_record,
    parse_key,
    published_record,
    week_tombstones,
)
from aggregations.rankings import Ranked

DIMENSIONS = ("model", "country", "vendor")
TOP = [Ranked(1, "openai/gpt-5.1", 900), Ranked(2, "x:y", 800)]


def compact(records: list[Record]) -> list[Record]:
    """What Kafka compaction keeps of ``records``: the last record of each key, tombstones
    removed (as they are once ``delete.retention.ms`` passed)."""
    last: dict[str, bytes | None] = {}
    for key, value in records:
        last.pop(key, None)
        last[key] = value
    return [(key, value) for key, value in last.items() if value is not None]


def test_keys_name_kind_dimension_and_week() -> None:
    """Each fact has its own key, so a later value of the same fact replaces it."""
    assert closed_record("2026-W47")[0] == "closed:2026-W47"
    assert finalized_record("2026-W47")[0] == "finalized:2026-W47"
    assert late_record("2026-W47", 3, 10)[0] == "late:2026-W47"
    assert published_record("model", "2026-W47", TOP)[0] == "published:model:2026-W47"
    assert parse_key("published:model:2026-W47") == ("published", "model", "2026-W47")
    assert parse_key(b"closed:2026-W47") == ("closed", None, "2026-W47")


@pytest.mark.parametrize(
    "key", ["", "closed", "closed:", "published:model", "published::2026-W47", "late:a:b", "x:1"]
)
def test_malformed_keys_are_refused(key: str) -> None:
    """A key that names no fact is a ValueError, never a half-applied record."""
    with pytest.raises(ValueError):
        parse_key(key)
    state = RankerState()
    with pytest.raises(ValueError):
        state.apply(key, b"1")
    assert state == RankerState()


def test_a_published_top_n_is_encoded_as_its_redis_value() -> None:
    """The record value is the JSON the ranker also keeps in Redis (members may hold ':')."""
    assert encode_top(TOP) == b'[["openai/gpt-5.1",1,900],["x:y",2,800]]'
    assert decode_top(encode_top(TOP)) == TOP
    assert decode_top("[]") == []
    for bad in (b"", b"{}", b"[1]", b'[["a",1]]', b"nope"):
        with pytest.raises(ValueError):
            decode_top(bad)


def test_the_latest_value_wins_and_a_tombstone_deletes() -> None:
    """Folding records in topic order gives the state the last write of each fact says."""
    newer = [Ranked(1, "x:y", 1000), Ranked(2, "openai/gpt-5.1", 900)]
    records = [
        closed_record("2026-W46"),
        finalized_record("2026-W46"),
        published_record("model", "2026-W46", TOP),
        late_record("2026-W46", 0, 500),
        published_record("model", "2026-W47", TOP),
        published_record("model", "2026-W47", newer),
        late_record("2026-W46", 2, 700),
        *week_tombstones("2026-W45", DIMENSIONS),  # nothing there: no effect
    ]
    state = RankerState.from_records(records)
    assert state.closed == {"2026-W46"}
    assert state.finalized == {"2026-W46"}
    assert state.published == {("model", "2026-W46"): TOP, ("model", "2026-W47"): newer}
    assert state.late == {"2026-W46": (2, 700)}
    assert state.weeks() == {"2026-W46", "2026-W47"}

    state.apply_all(week_tombstones("2026-W46", DIMENSIONS))
    assert state == RankerState(published={("model", "2026-W47"): newer})
    assert state.weeks() == {"2026-W47"}


def test_malformed_values_are_refused() -> None:
    """A value this version cannot read is a ValueError (the loader skips it)."""
    state = RankerState()
    with pytest.raises(ValueError):
        state.apply("late:2026-W47", b"[1]")
    with pytest.raises(ValueError):
        state.apply("published:model:2026-W47", b"{}")
    assert state == RankerState()


def test_tombstones_cover_every_record_of_the_week() -> None:
    """Expiring a week leaves no record of it, whichever of its facts were written."""
    every = [
        closed_record("2026-W40"),
        finalized_record("2026-W40"),
        late_record("2026-W40", 1, 2),
        *(published_record(d, "2026-W40", TOP) for d in DIMENSIONS),
    ]
    assert {key for key, _ in week_tombstones("2026-W40", DIMENSIONS)} == {k for k, _ in every}
    assert all(value is None for _, value in week_tombstones("2026-W40", DIMENSIONS))
    assert compact(every + week_tombstones("2026-W40", DIMENSIONS)) == []


weeks = st.sampled_from(["2026-W01", "2026-W02", "2026-W47", "2027-W52"])
rows = st.lists(st.tuples(st.text(min_size=1, max_size=8), st.integers(0, 10**15)), max_size=4)
tops = rows.map(lambda top: [Ranked(i, m, t) for i, (m, t) in enumerate(top, 1)])
records = st.one_of(
    weeks.map(closed_record),
    weeks.map(finalized_record),
    st.builds(late_record, weeks, st.integers(0, 10**6), st.integers(0, 10**15)),
    st.builds(published_record, st.sampled_from(DIMENSIONS), weeks, tops),
    st.builds(lambda w: week_tombstones(w, DIMENSIONS)[0], weeks),
    st.builds(lambda w, i: week_tombstones(w, DIMENSIONS)[i], weeks, st.integers(1, 5)),
)


@given(st.lists(records, max_size=40))
def test_compaction_keeps_the_state(history: list[Record]) -> None:
    """The compacted topic (the last value per key, tombstones gone) folds to the same state
    as the full history, and the state's own records are exactly that compacted content."""
    state = RankerState.from_records(history)
    assert RankerState.from_records(compact(history)) == state
    assert sorted(state.records()) == sorted(compact(history))
    assert RankerState.from_records(state.records()) == state
