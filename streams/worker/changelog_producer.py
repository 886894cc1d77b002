"""Faust's producer, with a flush that returns only once every record sent is acknowledged.

Faust flushes its producer before it commits a stream partition's offsets and before it lets a
rebalance hand partitions to another worker. Its flush drains the send buffer only while
records keep leaving it: it gives up after 0.1 s without one (``ProducerBuffer.flush_atmost``),
and a record taken from the buffer but not yet handed to aiokafka is counted nowhere. A slow
send (a busy machine, a rebalance refreshing metadata) thus let Faust commit the offsets of
partials records whose table writes were not in the changelog yet. The worker that took the
partition over read the changelog to its end without them, recovered an older state of the
key, and started after the committed partials: a whole stretch of counts was lost
(RELIABILITY.md, bug 17).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import FutureMessage

log = logging.getLogger("tokenboard.worker")

#: How often a flush still waiting for acknowledgements says so.
WAIT_REPORT_S = 10.0


class ChangelogWriteFailed(RuntimeError):
    """A record Faust sent (a changelog write) was not stored: committing past it would lose it."""


class AckedFlushProducer(faust_aiokafka.Producer):
    """Faust's aiokafka producer whose :meth:`flush` waits for every record's acknowledgement."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unacknowledged: set[FutureMessage] = set()
        self._failure: BaseException | None = None

    def send_soon(self, fut: FutureMessage) -> None:
        """Buffer ``fut`` as Faust does, and remember it until the broker acknowledged it."""
        self._unacknowledged.add(fut)
        fut.add_done_callback(self._on_done)
        super().send_soon(fut)

    def _on_done(self, fut: asyncio.Future[Any]) -> None:
        self._unacknowledged.discard(fut)
        if not fut.cancelled() and fut.exception() is not None and self._failure is None:
            self._failure = fut.exception()

    async def flush(self) -> None:
        """Return once every record handed to :meth:`send_soon` so far is acknowledged.

        Raises :class:`ChangelogWriteFailed` when one of them could not be written: the
        offsets of what it recorded must not be committed, and the worker restarts from the
        changelog and the last commit instead.
        """
        started = reported = time.monotonic()
        while True:
            await super().flush()
            pending = [fut for fut in self._unacknowledged if not fut.done()]
            if not pending:
                break
            await asyncio.wait(pending, timeout=1.0)
            now = time.monotonic()
            if now - reported >= WAIT_REPORT_S:
                reported = now
                log.warning(
                    "flush: %d records not acknowledged after %.0f s, still waiting",
                    len(pending), now - started,
                )  # fmt: skip
        if self._failure is not None:
            # Sticky: no later commit may pass the record that was lost either.
            raise ChangelogWriteFailed(f"a record Faust sent was not written: {self._failure!r}")
