"""When may a week close: the slowest (partials partition, source) pair, not the fastest."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregations.progress import closing_watermark, parse_progress_field, progress_field


def test_field_round_trip() -> None:
    """Fields name the partials partition first, then the source usage partition."""
    assert progress_field(3, 7) == "3:7"
    assert parse_progress_field("3:7") == (3, 7)
    with pytest.raises(ValueError):
        parse_progress_field("37")
    with pytest.raises(ValueError):
        parse_progress_field("a:b")


def test_empty_progress_gives_no_answer() -> None:
    """No progress in Redis (writers of an older version): the caller falls back."""
    assert closing_watermark({}, range(4)) is None


def test_the_slowest_pair_decides() -> None:
    """One lagging source holds the week open, whatever the others reached."""
    progress = {f"{x}:{p}": 1000 for x in range(2) for p in range(2)}
    progress["1:1"] = 400
    assert closing_watermark(progress, range(2)) == 400


def test_sources_never_seen_are_ignored() -> None:
    """A usage partition that never had an event does not hold anything back."""
    progress = {"0:0": 900, "1:0": 800, "0:2": 1000, "1:2": 1000}
    assert closing_watermark(progress, range(2)) == 800


def test_a_partition_that_has_not_seen_a_seen_source_counts_as_zero() -> None:
    """Every flush reaches every partition: a pair missing for a known source is not there
    yet (its owner did not fold or write it), so nothing closes on the watermark."""
    progress = {"0:0": 900, "0:1": 1000, "1:1": 1000}
    assert closing_watermark(progress, range(2)) == 0
    # Also a partition with no field at all.
    assert closing_watermark({"0:0": 5, "1:0": 5}, range(3)) == 0


@given(
    st.dictionaries(
        st.tuples(st.integers(0, 5), st.integers(0, 5)), st.integers(0, 10**13), min_size=1
    )
)
def test_never_above_any_pair_and_exact_when_complete(pairs: dict[tuple[int, int], int]) -> None:
    """The result never exceeds a present pair; with every pair present it is their minimum."""
    progress = {progress_field(x, p): ms for (x, p), ms in pairs.items()}
    partitions = range(6)
    found = closing_watermark(progress, partitions)
    assert found is not None
    assert all(found <= ms for ms in pairs.values())
    sources = {p for _, p in pairs}
    if all((x, p) in pairs for x in partitions for p in sources):
        assert found == min(pairs.values())
    else:
        assert found == 0
