"""The C murmur2 partitioner puts every key where Kafka's own default partitioner does."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.sdk.partitioner import default_partitioner, kafka_murmur2, partition_of


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=300))
def test_hash_equals_aiokafkas_murmur2(key: bytes) -> None:
    """Same hash as aiokafka's pure-Python copy of the Java client's, for any bytes."""
    assert kafka_murmur2(key) == murmur2(key) & 0x7FFFFFFF


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80), st.integers(min_value=1, max_value=512))
def test_partition_equals_aiokafkas_default_partitioner(event_id: str, partitions: int) -> None:
    """Keyed by an event id, a record lands on the partition aiokafka (and Java) choose."""
    key = event_id.encode()
    all_partitions = list(range(partitions))
    expected = DefaultPartitioner()(key, all_partitions, all_partitions)
    assert partition_of(key, partitions) == expected
    assert default_partitioner(key, all_partitions, all_partitions) == expected


def test_unkeyed_records_go_to_an_available_partition() -> None:
    """Without a key, any available partition (as aiokafka's default)."""
    for _ in range(50):
        assert default_partitioner(None, [0, 1, 2, 3], [1, 3]) in (1, 3)
