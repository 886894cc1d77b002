"""Deduplication decides by offset, so a replayed block reaches the same decisions."""

from __future__ import annotations

from aggregations.dedup import Deduplicator, id_digest, pack_entries, unpack_entries

HOUR = 3_600_000


def test_second_offset_with_same_id_is_duplicate() -> None:
    """A later offset carrying a seen id is a duplicate; the first one is not."""
    dedup = Deduplicator(horizon_ms=24 * HOUR)
    assert dedup.is_duplicate("a", 10, 0) is False
    assert dedup.is_duplicate("a", 11, 1) is True
    assert dedup.is_duplicate("b", 12, 1) is False


def test_replay_of_the_first_offset_is_not_duplicate() -> None:
    """Re-reading the offset that first carried an id counts it again (same decision)."""
    dedup = Deduplicator(horizon_ms=24 * HOUR)
    dedup.is_duplicate("a", 10, 0)
    dedup.is_duplicate("a", 11, 0)
    assert dedup.is_duplicate("a", 10, 0) is False
    assert dedup.is_duplicate("a", 11, 0) is True


def test_restore_keeps_the_smallest_offset() -> None:
    """Restored entries decide by the smallest offset seen for an id."""
    dedup = Deduplicator(horizon_ms=24 * HOUR)
    digest = id_digest("a")
    dedup.restore([(digest, 20, 0), (digest, 10, 0)])
    assert dedup.is_duplicate("a", 10, 0) is False
    assert dedup.is_duplicate("a", 20, 0) is True


def test_ids_outside_the_horizon_count_again() -> None:
    """An id seen longer ago than the horizon is not a duplicate, and expiry forgets it."""
    dedup = Deduplicator(horizon_ms=HOUR)
    dedup.is_duplicate("a", 1, 0)
    assert dedup.is_duplicate("a", 2, 2 * HOUR) is False
    dedup.is_duplicate("b", 3, 0)
    assert dedup.expire(now_ms=3 * HOUR) == 1
    assert len(dedup) == 1


def test_persisted_form_round_trips() -> None:
    """New entries pack into one record and unpack with its header."""
    dedup = Deduplicator(horizon_ms=HOUR)
    dedup.is_duplicate("a", 1, 5)
    dedup.is_duplicate("b", 2, 6)
    entries = dedup.take_new()
    assert dedup.take_new() == []
    end, watermark, unpacked = unpack_entries(pack_entries(2, 99, entries))
    assert (end, watermark, list(unpacked)) == (2, 99, entries)


def test_an_id_given_as_bytes_is_the_same_id() -> None:
    """Stage 1 passes the record key (the id's UTF-8 bytes): same digest, same decisions."""
    dedup = Deduplicator(horizon_ms=24 * HOUR)
    assert dedup.is_duplicate("é-1", 10, 0) is False
    assert dedup.is_duplicate_bytes("é-1".encode(), 11, 0) is True
    assert dedup.is_duplicate_bytes("é-1".encode(), 10, 0) is False
    assert dedup.is_duplicate_bytes(b"b", 12, 0) is False
    assert dedup.is_duplicate("b", 13, 0) is True
    assert [digest for digest, _, _ in dedup.take_new()] == [id_digest("é-1"), id_digest("b")]
