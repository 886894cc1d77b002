"""The worker's Faust producer flushes completely before Faust commits (RELIABILITY.md, bug 17).

Faust commits a partials partition's offsets, and hands partitions over in a rebalance, right
after ``producer.flush()``. Faust's own flush gives up once no record left its buffer for 0.1 s,
so with a slow send it returned while table writes were still unsent: the worker taking the
partition over recovered the changelog without them and started after the committed records.
Here every send is slowed down the same way, on the real broker.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker.changelog_producer import AckedFlushProducer, ChangelogWriteFailed
from streams.worker.faust_app import new_faust_app
from tests.integration.kafka_read import read_topic

SLOW_SEND_S = 0.3
RECORDS = 4


async def _send_slowly_then_flush(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> int:
    """Send ``RECORDS`` records with ``send_soon`` (as a table does), each taking
    ``SLOW_SEND_S`` to leave the buffer; flush; return how many the topic holds then."""
    await ensure_topics(settings)
    app = new_faust_app(settings)
    topic_name = settings.dead_letter_topic
    topic = app.topic(topic_name, partitions=settings.partitions)
    producer = app.producer
    buffer = producer.buffer
    send_pending = buffer._send_pending

    async def slow_send(fut: Any) -> None:
        await asyncio.sleep(SLOW_SEND_S)
        await send_pending(fut)

    monkeypatch.setattr(buffer, "_send_pending", slow_send)
    await producer.start()
    try:
        for i in range(RECORDS):
            topic.send_soon(key=b"k", value=f"v{i}".encode(), partition=0)
        started = time.monotonic()
        await producer.flush()
        flushed_after = time.monotonic() - started
        held = len(await read_topic(settings, topic_name))
        assert flushed_after < 30, f"flush took {flushed_after:.1f} s"
        return held
    finally:
        await producer.stop()


async def test_flush_returns_once_every_record_is_written(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After flush() the topic holds every record sent before it, however slow the sends."""
    assert await _send_slowly_then_flush(settings, monkeypatch) == RECORDS


async def test_fausts_own_flush_returns_early(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fault this guards against is real: Faust's own flush leaves records unsent."""
    monkeypatch.setattr(AckedFlushProducer, "flush", AckedFlushProducer.__mro__[1].flush)
    assert await _send_slowly_then_flush(settings, monkeypatch) < RECORDS


async def test_a_failed_write_stops_every_later_commit(settings: Settings) -> None:
    """A record the broker never stored makes every later flush (and so commit) fail."""
    await ensure_topics(settings)
    app = new_faust_app(settings)
    producer = app.producer
    assert isinstance(producer, AckedFlushProducer)
    await producer.start()
    try:
        # A compacted topic refuses a record without a key: the broker never stores it.
        topic = app.topic(settings.ranker_state_topic, partitions=1)
        topic.send_soon(key=None, value=b"lost", partition=0)
        for _ in range(2):
            with pytest.raises(ChangelogWriteFailed):
                await asyncio.wait_for(producer.flush(), 60)
    finally:
        await producer.stop()
