"""Kafka's default partitioner, with its murmur2 hash computed in C.

Every Kafka client puts a keyed record on partition ``murmur2(key) % P`` (the Java client's
hash, seed 0x9747b28c); tokenboard relies on it, since duplicates are found within one usage
partition (ARCHITECTURE.md, "Exact whatever key a producer gives its records"). aiokafka
computes that hash in pure Python: 10-27 µs per key, which capped the SDK at ~10,000 events/s
per process. ``murmurhash2`` (a C extension) gives the same 32-bit hash in ~1 µs; a test holds
the two equal on random keys.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from murmurhash2 import murmurhash2

#: The seed of Kafka's Java client (``Utils.murmur2``), which aiokafka's copy uses too.
KAFKA_SEED = 0x9747B28C


def kafka_murmur2(key: bytes) -> int:
    """Kafka's positive murmur2 hash of ``key`` (``Utils.toPositive(Utils.murmur2(key))``)."""
    hashed: int = murmurhash2(key, KAFKA_SEED)
    return hashed & 0x7FFFFFFF


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a record keyed ``key``."""
    return kafka_murmur2(key) % partitions


def default_partitioner(
    key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
) -> int:
    """aiokafka's ``DefaultPartitioner`` semantics (keyed: murmur2 over all partitions;
    unkeyed: a random available one), with the hash in C. Pass as
    ``AIOKafkaProducer(partitioner=default_partitioner)``."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[partition_of(key, len(all_partitions))]
