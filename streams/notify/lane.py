"""One delivery lane per target: its own consumer group, queue, retries and offsets.

A lane reads ``rankings.changes`` and ``alerts`` in the consumer group
``{app_id}-notify-{target}``, so each target has its own Kafka position: a target that is
down, answers 5xx or is slow holds back nobody but itself. Two tasks share a bounded queue:
the fetcher keeps polling (the group never times the lane out, however long a retry takes)
and pauses its partitions while the queue is full; the deliverer posts one record at a time,
in order, and commits its offset only once the record is delivered, dead-lettered or not
for this target (filtered, already delivered). A stopped or crashed lane therefore resumes
at the first record it had not finished, and the ledger (:mod:`streams.notify.ledger`) keeps
a record read again from being sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from streams import metrics
from streams.notify.config import Target
from streams.notify.delivery import DeadLetters, post_once
from streams.notify.formatting import event_summary, request_body, request_headers
from streams.notify.ledger import DeliveredLedger
from streams.notify.retry import backoff_delay
from streams.settings import Settings
from streams.store.names import EventNamer

__all__ = ["Lane", "LaneCounts", "decode_event", "group_id"]

log = logging.getLogger("tokenboard.notify")
T = TypeVar("T")

#: Milliseconds one poll waits for records (also how soon the fetcher sees a stop).
FETCH_WAIT_MS = 500
#: Records a lane holds in memory before it pauses fetching.
QUEUE_SIZE = 100
#: Seconds between tries of a Redis or Kafka operation that failed (not the target's fault).
INFRA_RETRY_S = 2.0


def group_id(settings: Settings, target: Target) -> str:
    """The consumer group holding ``target``'s position in the topics."""
    return f"{settings.app_id}-notify-{target.name}"


def decode_event(raw: bytes | None) -> dict[str, Any] | None:
    """A published event as a dict, or None for a record that is not one with an ``id``."""
    try:
        event = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not event["id"]:
        return None
    return event


@dataclass(slots=True)
class LaneCounts:
    """What a lane did since it started (the progress lines and the summary at exit)."""

    delivered: int = 0
    dead_lettered: int = 0
    failed_attempts: int = 0
    duplicates: int = 0
    filtered: int = 0


class _Stopping(Exception):
    """Raised out of a retry loop when the lane is asked to stop."""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, lane: Lane) -> None:
        self.lane = lane

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.lane.partitions_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.lane.partitions_assigned(set(assigned))


class Lane:
    """Delivers what one target wants, in order, independently of every other target."""

    def __init__(
        self,
        target: Target,
        settings: Settings,
        ledger: DeliveredLedger,
        namer: EventNamer,
        dead_letters: DeadLetters,
        *,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.target = target
        self.settings = settings
        self.ledger = ledger
        self.namer = namer
        self.dead_letters = dead_letters
        self.queue_size = queue_size
        self.counts = LaneCounts()
        #: Set once the lane holds its partitions (and, for ``start = "latest"``, has
        #: committed where it starts): events published from then on reach the target.
        self.ready = asyncio.Event()
        self._queue: deque[Any] = deque()
        self._consumer: AIOKafkaConsumer | None = None
        #: Partitions just assigned whose start is not settled yet (kept paused meanwhile).
        self._unpinned: set[TopicPartition] = set()
        self._stopping = asyncio.Event()
        self._wakeup = asyncio.Event()

    def stop(self) -> None:
        """Finish the request in flight (within the target's timeout), then return."""
        self._stopping.set()
        self._wakeup.set()

    async def run(self) -> None:
        """Fetch and deliver until :meth:`stop`."""
        s, t = self.settings, self.target
        consumer = AIOKafkaConsumer(
            **s.kafka_client_options(),
            group_id=group_id(s, t),
            client_id=f"tokenboard-notify-{t.name}",
            enable_auto_commit=False,
            auto_offset_reset=t.start,
        )
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()  # a failed start leaves the client open otherwise
            raise
        self._consumer = consumer
        consumer.subscribe([s.rankings_topic, s.alerts_topic], listener=_Rebalance(self))
        session = aiohttp.ClientSession()
        tasks = [
            asyncio.create_task(self._fetch(consumer), name=f"notify-fetch-{t.name}"),
            asyncio.create_task(self._deliver(consumer, session), name=f"notify-post-{t.name}"),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            for task in tasks:  # a second Ctrl-C: the request in flight is abandoned
                task.cancel()
            raise
        finally:
            self.stop()
            # The deliverer returns after its request in flight; both end within its timeout.
            await asyncio.wait(tasks)
            await session.close()
            await consumer.stop()
        for task in tasks:
            task.result()  # a task that failed fails the lane

    # Rebalance callbacks ------------------------------------------------------------------
    def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Hold new partitions back until :meth:`_pin` settled where they start."""
        if self.target.start == "latest" and self._consumer is not None:
            self._unpinned |= assigned
            self._consumer.pause(*assigned)

    def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Forget queued records of partitions another member now owns: it delivers them."""
        self._unpinned -= revoked
        keep = [r for r in self._queue if TopicPartition(r.topic, r.partition) not in revoked]
        self._queue = deque(keep)

    # Fetching -----------------------------------------------------------------------------
    async def _fetch(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            try:
                await self._pin(consumer)
                room = self.queue_size - len(self._queue)
                settled = consumer.assignment() - self._unpinned
                if room > 0:
                    consumer.resume(*settled)
                else:
                    consumer.pause(*settled)
                batch = await consumer.getmany(timeout_ms=FETCH_WAIT_MS, max_records=max(room, 1))
            except KafkaError as exc:
                log.warning("%s: reading Kafka failed (%s); trying again", self.target.name, exc)
                await self._stopped_within(INFRA_RETRY_S)
                continue
            for records in batch.values():
                self._queue.extend(records)
            if batch:
                self._wakeup.set()
            if not self.ready.is_set() and consumer.assignment() and not self._unpinned:
                self.ready.set()

    async def _pin(self, consumer: AIOKafkaConsumer) -> None:
        """Commit the end offset of new partitions that have no committed offset yet.

        Without it, ``start = "latest"`` would mean "latest at every start": events
        published while ``notify`` was stopped, before this target's first delivery on a
        partition, would be skipped.
        """
        pending = sorted(self._unpinned & consumer.assignment())
        if not pending:
            self._unpinned.clear()
            return
        fresh = [tp for tp in pending if await consumer.committed(tp) is None]
        if fresh:
            ends = await consumer.end_offsets(fresh)
            for tp in fresh:
                consumer.seek(tp, ends[tp])
            await consumer.commit({tp: ends[tp] for tp in fresh})
        self._unpinned.difference_update(pending)

    # Delivering ---------------------------------------------------------------------------
    async def _deliver(self, consumer: AIOKafkaConsumer, session: aiohttp.ClientSession) -> None:
        while not self._stopping.is_set():
            if not self._queue:
                self._wakeup.clear()
                await self._woken_within(1.0)
                continue
            record = self._queue[0]
            if not await self._handle(record, session):
                return  # stopping: not committed, so the next start takes it up again
            if self._queue and self._queue[0] is record:
                self._queue.popleft()
            await self._commit(consumer, record)

    async def _handle(self, record: Any, session: aiohttp.ClientSession) -> bool:
        """Deliver, dead-letter or skip one record; False when stopped before it was done."""
        name = self.target.name
        source = f"{record.topic}/{record.partition}/{record.offset}"
        event = decode_event(record.value)
        if event is None:
            log.warning("%s: skipped %s: not a JSON event with an id", name, source)
            return True
        if not self.target.filters.accepts(event):
            self.counts.filtered += 1
            return True
        try:
            seen = await self._keep_trying(
                functools.partial(self.ledger.delivered, name, event["id"]), "Redis"
            )
            if seen:
                self.counts.duplicates += 1
                log.info("%s: %s was already delivered; skipped", name, event_summary(event))
                return True
            return await self._attempts(event, source, session)
        except _Stopping:
            return False

    async def _attempts(
        self, event: dict[str, Any], source: str, session: aiohttp.ClientSession
    ) -> bool:
        t = self.target
        display = await self.namer.name(event) if t.kind == "slack" else None
        body = request_body(t, orjson.dumps(event), event, display)
        headers = request_headers(t, event)
        failures = 0
        while True:
            attempt = await post_once(session, t, body, headers)
            if attempt.verdict == "delivered":
                self.counts.delivered += 1
                metrics.NOTIFY_DELIVERED.labels(t.name).inc()
                log.info("%s: delivered %s", t.name, event_summary(event))
                # Stopped while Redis fails: the offset is still committed, so only a
                # republished id could reach the target again.
                with contextlib.suppress(_Stopping):
                    await self._keep_trying(
                        functools.partial(self.ledger.record, t.name, event["id"]), "Redis"
                    )
                return True
            failures += 1
            self.counts.failed_attempts += 1
            metrics.NOTIFY_FAILED.labels(t.name).inc()
            if attempt.verdict == "permanent" or failures >= t.max_attempts:
                send = functools.partial(
                    self.dead_letters.send, t, event, attempt, failures, source
                )
                await self._keep_trying(send, "Kafka (dead letter)")
                self.counts.dead_lettered += 1
                log.warning(
                    "%s: gave up on %s after %d attempt%s (%s); sent to %s",
                    t.name,
                    event_summary(event),
                    failures,
                    "" if failures == 1 else "s",
                    attempt.reason,
                    self.dead_letters.topic,
                )
                return True
            delay = backoff_delay(
                failures,
                t.backoff_initial_s,
                t.backoff_max_s,
                attempt.retry_after_s,
                random.random(),
            )
            log.warning(
                "%s: attempt %d/%d failed (%s); next in %.2g s",
                t.name,
                failures,
                t.max_attempts,
                attempt.reason,
                delay,
            )
            if await self._stopped_within(delay):
                raise _Stopping

    async def _commit(self, consumer: AIOKafkaConsumer, record: Any) -> None:
        tp = TopicPartition(record.topic, record.partition)
        try:
            await consumer.commit({tp: record.offset + 1})
        except KafkaError as exc:
            # After a rebalance the record may be read again: the ledger skips it then.
            log.warning("%s: commit of %s failed (%s)", self.target.name, tp, exc)

    # Waiting ------------------------------------------------------------------------------
    async def _keep_trying(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        """Run ``operation`` until it succeeds: Redis or Kafka failing is not the target's
        fault and costs it no attempt."""
        while True:
            try:
                return await operation()
            except (RedisError, KafkaError, OSError) as exc:
                log.warning("%s: %s failed (%s); trying again", self.target.name, what, exc)
                if await self._stopped_within(INFRA_RETRY_S):
                    raise _Stopping from exc

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _woken_within(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wakeup.wait(), seconds)
        except TimeoutError:
            return
