"""The live feed's fan-out: one upstream tail per API process, shared by every SSE client.

:class:`EventHub` follows the rankings and alerts topics with a single
:class:`~streams.sdk.tail.EventTail` (one Kafka consumer per process, however many viewers),
turns each event into its SSE message once (name, text, JSON) and hands the bytes to every
connected :class:`StreamClient`. Each client has a bounded queue: a client that still has
``queue_limit`` messages it did not take when the next ones arrive is dropped (its
connection aborted) and never holds the others back. The hub keeps the latest :data:`RING`
messages, so ``backlog=N`` still gives the latest N events over all partitions, oldest first,
followed by every live one without a gap or a repeat.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka.errors import KafkaError, KafkaTimeoutError

from streams.http.server_metrics import STREAM_CLIENTS, STREAM_DROPPED, STREAM_EVENTS
from streams.sdk.tail import EventTail
from streams.settings import Settings
from streams.store.names import EventNamer

__all__ = ["RING", "ClientDropped", "EventHub", "StreamClient", "StreamsFull"]

log = logging.getLogger("tokenboard.api")

#: Latest messages kept for ``backlog`` (the API's largest backlog).
RING = 500
#: A fresh namer now and then: the namer remembers an id it could not name yet for good.
NAMER_REFRESH_S = 600.0
#: Starting the tail (connect, offsets, backlog) longer than this is a 503 for the client.
START_TIMEOUT_S = 30.0
#: Stopping the tail longer than this is given up (shutdown must not hang on the broker).
STOP_TIMEOUT_S = 10.0


class StreamsFull(Exception):
    """The process already serves its maximum of live-feed clients."""


class ClientDropped(Exception):
    """The client fell too far behind and was dropped."""


class StreamClient:
    """One SSE client's queue of encoded messages."""

    __slots__ = ("_limit", "_queue", "_transport", "_waiter", "dropped", "ended")

    def __init__(self, limit: int, transport: asyncio.BaseTransport | None) -> None:
        self._limit = limit
        self._queue: deque[bytes] = deque()
        self._transport = transport
        self._waiter: asyncio.Future[None] | None = None
        self.dropped = False
        self.ended = False

    def offer(self, messages: list[bytes]) -> bool:
        """Queue ``messages``; False (and the client dropped) when it still has ``limit``
        messages it did not take. One batch always fits: a burst (a week closing) is not
        a slow client."""
        if self.dropped or self.ended:
            return not self.dropped
        if len(self._queue) >= self._limit:
            self.drop()
            return False
        self._queue.extend(messages)
        self._wake()
        return True

    def drop(self) -> None:
        """Give up on this client: its handler stops and its connection is aborted (a
        write it is blocked in fails at once)."""
        self.dropped = True
        self._queue.clear()
        self._wake()
        transport = self._transport
        if isinstance(transport, asyncio.Transport) and not transport.is_closing():
            transport.abort()

    def end(self) -> None:
        """End the stream cleanly (shutdown, a lost upstream, a client that went away)."""
        self.ended = True
        self._wake()

    async def next(self, timeout_s: float) -> bytes | None:
        """The queued messages as one write, or None after ``timeout_s`` without any.

        Raises :class:`ClientDropped` once dropped; returns ``b""`` once ended.
        """
        if not self._queue and not self.dropped and not self.ended:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout_s):
                    await self._waiter
            except TimeoutError:
                pass
            finally:
                self._waiter = None
        if self.dropped:
            raise ClientDropped
        if self._queue:
            data = b"".join(self._queue)
            self._queue.clear()
            return data
        return b"" if self.ended else None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class EventHub:
    """One tail of the rankings and alerts topics fanned out to every SSE client."""

    def __init__(
        self,
        settings: Settings,
        namer: Callable[[], EventNamer],
        *,
        queue_limit: int,
        max_clients: int,
        tail: Callable[[Settings, int], EventTail] | None = None,
    ) -> None:
        self.settings = settings
        self.queue_limit = queue_limit
        self.max_clients = max_clients
        self._new_namer = namer
        self._new_tail = tail or (lambda s, backlog: EventTail(s, backlog=backlog))
        self._clients: set[StreamClient] = set()
        self._ring: deque[bytes] = deque(maxlen=RING)
        self._task: asyncio.Task[None] | None = None
        self._starting: asyncio.Future[None] | None = None
        self._namer: EventNamer | None = None
        self._namer_at = 0.0

    @property
    def clients(self) -> int:
        """Clients connected now."""
        return len(self._clients)

    @property
    def full(self) -> bool:
        """Whether one more client would exceed ``max_clients``."""
        return len(self._clients) >= self.max_clients

    async def subscribe(
        self, backlog: int, transport: asyncio.BaseTransport | None
    ) -> tuple[StreamClient, list[bytes]]:
        """A new client and the latest ``backlog`` messages; every message the hub reads
        from now on reaches the client. Starts the tail on first use (a Kafka error is the
        caller's 503); raises :class:`StreamsFull` at ``max_clients``."""
        if self.full:
            raise StreamsFull
        if self._task is None or self._task.done():
            if self._starting is None:
                self._starting = asyncio.ensure_future(self._start())
                self._starting.add_done_callback(self._started)
            # Shielded: a client that gives up does not cancel the start the others wait for.
            try:
                await asyncio.wait_for(asyncio.shield(self._starting), START_TIMEOUT_S)
            except TimeoutError:
                raise KafkaTimeoutError(
                    f"the live feed's tail did not start within {START_TIMEOUT_S:g} s"
                ) from None
        if self.full:  # others got in while the tail started
            raise StreamsFull
        # No await from here on: the history and the registration are one step, so that
        # nothing is missed or sent twice between them.
        client = StreamClient(self.queue_limit, transport)
        self._clients.add(client)
        STREAM_CLIENTS.inc()
        history = list(self._ring)[-backlog:] if backlog else []
        return client, history

    def unsubscribe(self, client: StreamClient) -> None:
        """Forget a client whose handler ended."""
        if client in self._clients:
            self._clients.discard(client)
            STREAM_CLIENTS.dec()

    async def stop(self) -> None:
        """End every stream and stop the tail."""
        for client in list(self._clients):
            client.end()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task], timeout=STOP_TIMEOUT_S + 1)

    def _started(self, done: asyncio.Future[None]) -> None:
        self._starting = None
        if not done.cancelled():
            done.exception()  # every subscriber waiting on it saw it

    async def _start(self) -> None:
        tail = self._new_tail(self.settings, RING)
        await tail.start()
        try:
            # What preceded the start (the backlog, and whatever arrived while it was read)
            # is history: it goes to the ring before any client can subscribe.
            self._ring.extend(await self._messages(await tail.next_batch(timeout_ms=0)))
        except BaseException:
            await tail.stop()
            raise
        self._task = asyncio.create_task(self._run(tail))

    async def _run(self, tail: EventTail) -> None:
        try:
            while True:
                batch = await tail.next_batch(timeout_ms=1000)
                if not batch:
                    continue
                messages = await self._messages(batch)
                self._ring.extend(messages)
                STREAM_EVENTS.inc(len(messages))
                for client in list(self._clients):
                    if not client.offer(messages):
                        self.unsubscribe(client)
                        STREAM_DROPPED.inc()
        except asyncio.CancelledError:
            raise
        except Exception:
            # Clients reconnect (EventSource does by itself) and start a new tail.
            log.exception("the live feed's tail failed; ending %d streams", len(self._clients))
            for client in list(self._clients):
                client.end()
        finally:
            try:
                await asyncio.wait_for(tail.stop(), STOP_TIMEOUT_S)
            except (TimeoutError, KafkaError, OSError) as exc:
                log.warning("the live feed's tail did not stop cleanly: %r", exc)

    async def _messages(self, events: list[dict[str, Any]]) -> list[bytes]:
        now = time.monotonic()
        if self._namer is None or now - self._namer_at > NAMER_REFRESH_S:
            self._namer, self._namer_at = self._new_namer(), now
        messages = []
        for event in events:
            try:
                payload = await self._namer.payload(event)
            except Exception:
                # A malformed event must not stop the feed for everyone: shown as published.
                log.warning("event %r could not be described; sent as published", event)
                payload = dict(event)
            messages.append(b"data: " + orjson.dumps(payload) + b"\n\n")
        return messages
