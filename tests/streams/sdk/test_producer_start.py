"""A producer whose connection fails is closed, not left half open."""

from __future__ import annotations

import gc
import socket
import warnings

import pytest
from aiokafka.errors import KafkaConnectionError

from streams.sdk.producer import UsageProducer
from streams.settings import Settings


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_failed_start_raises_and_leaves_no_unclosed_producer() -> None:
    """start() on an unreachable broker raises, and no "Unclosed AIOKafkaProducer" follows."""
    settings = Settings.from_env().replace(kafka_bootstrap=f"127.0.0.1:{closed_port()}")
    producer = UsageProducer(settings)
    with pytest.raises(KafkaConnectionError):
        await producer.start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del producer
        gc.collect()
    unclosed = [w for w in caught if "Unclosed" in str(w.message)]
    assert not unclosed, [str(w.message) for w in unclosed]
