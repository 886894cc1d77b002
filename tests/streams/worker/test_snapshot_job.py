"""Which keys and progress fields a snapshot writes, given the partitions a worker owns."""

from __future__ import annotations

import orjson
import pytest

from aggregations.partials import partition_for
from streams.worker.snapshot_job import owned_progress, owned_values

PARTITIONS = 4


def keys_by_partition(count: int) -> dict[int, list[str]]:
    """Table keys grouped by partition, ``count`` of them in all."""
    grouped: dict[int, list[str]] = {}
    for i in range(count):
        key = f"model:2026-W47:vendor/model-{i}"
        grouped.setdefault(partition_for(key, PARTITIONS), []).append(key)
    return grouped


def test_only_keys_of_owned_partitions_are_written() -> None:
    """Keys of partitions another worker now owns are skipped (stale copies in the memory store)."""
    grouped = keys_by_partition(40)
    weekly = {
        key: orjson.dumps({"c": [i]})
        for i, key in enumerate(k for keys in grouped.values() for k in keys)
    }
    owned = {0, 2}
    written = dict(owned_values(list(weekly), owned, PARTITIONS, weekly))
    assert set(written) == {k for p in owned for k in grouped.get(p, [])}
    for key, value in written.items():
        assert value == orjson.loads(weekly[key])


def test_keys_gone_from_the_table_are_skipped() -> None:
    """A pending key no longer in the table (expired meanwhile) is not written."""
    grouped = keys_by_partition(40)
    partition, keys = next(iter(grouped.items()))
    weekly = {keys[0]: orjson.dumps({"c": [1]})}
    written = dict(owned_values(keys, {partition}, PARTITIONS, weekly))
    assert set(written) == {keys[0]}


def test_values_are_decoded_lazily() -> None:
    """The values come from a generator, so a full rewrite never decodes the whole table at once."""
    weekly = {"model:2026-W47:a": b"not json"}
    values = owned_values(list(weekly), set(range(PARTITIONS)), PARTITIONS, weekly)
    # Building it decoded nothing: the bad value raises only once it is consumed.
    with pytest.raises(orjson.JSONDecodeError):
        next(values)


def test_progress_of_owned_partials_partitions_only() -> None:
    """Progress fields "X:p" are written only for owned partials partitions X with a value."""
    progress = {"0:1": 100, "0:2": 200, "1:1": 300, "2:1": 400}
    marks = [*progress, "2:5"]
    assert owned_progress(marks, {0, 2}, progress) == {"0:1": 100, "0:2": 200, "2:1": 400}


def test_no_owned_partitions_write_no_progress() -> None:
    """A worker owning nothing writes no progress at all."""
    assert owned_progress(["0:1", "1:1"], set(), {"0:1": 1, "1:1": 2}) == {}
