"""Reading the dead-letter topic: the events the workers rejected, with reason, detail and source.

``tokenboard dead-letters`` prints them and the read API serves them (``GET /v1/dead-letters``);
both read through :func:`read_dead_letters`, without a consumer group (nothing is committed).

A worker sends each rejected record to ``<prefix>.dead-letter`` with the original bytes and
the headers ``reason``, ``detail`` and ``source`` (``topic/partition/offset`` of the rejected
record). Delivery is at least once: a rebalance replays a block and sends its dead letters
again, with the same ``source``, so readers keep the first copy of each source.
"""

from __future__ import annotations

import heapq
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, get_args

from aiokafka import AIOKafkaConsumer, TopicPartition

from aggregations.errors import InvalidInput
from aggregations.events import RejectReason
from streams.settings import Settings

__all__ = [
    "DEFAULT_LIMIT",
    "REASONS",
    "DeadLetter",
    "DeadLetterPage",
    "check_reason",
    "parse_since",
    "read_dead_letters",
]

#: Every reason code a dead letter can carry (``aggregations.events.RejectReason``).
REASONS: tuple[str, ...] = get_args(RejectReason)
DEFAULT_LIMIT = 50
#: At most this much of a rejected value is returned as text (an oversized event is 64 KiB+).
VALUE_CHARS = 1024
#: Reading stops after this long even if the topic's end was not reached (``complete`` False).
READ_TIMEOUT_S = 30.0

_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"(?:[0-9]+[smhdw])+")
_DURATION_PART = re.compile(r"([0-9]+)([smhdw])")
_SINCE_HELP = "a duration such as 90s, 15m, 2h, 1d12h or 7d, or a time such as 2026-11-18T14:00:00Z"


def parse_since(text: str, now_ms: int) -> int:
    """``--since`` / ``since=``: a duration back from ``now_ms`` or a point in time, as epoch ms.

    A time without an offset, or a bare date, is UTC. Raises :class:`InvalidInput`.
    """
    value = text.strip()
    if _DURATION.fullmatch(value.lower()):
        back = sum(int(n) * _UNITS_MS[unit] for n, unit in _DURATION_PART.findall(value.lower()))
        return now_ms - back
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"since {text!r} is neither {_SINCE_HELP}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def check_reason(reason: str | None) -> str | None:
    """``reason`` if it is a known reason code (or None); else :class:`InvalidInput`."""
    if reason is None or reason in REASONS:
        return reason
    raise InvalidInput(f"unknown reason {reason!r}: expected one of {', '.join(REASONS)}")


def format_time(ms: int) -> str:
    """``2026-11-18T14:03:07.250Z``."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected record: when it was dead-lettered, why, where it came from, its bytes."""

    timestamp_ms: int
    reason: str
    detail: str
    source: str
    key: str | None
    value: bytes
    partition: int
    offset: int

    def text(self, limit: int = VALUE_CHARS) -> str:
        """The value as text (invalid UTF-8 replaced), at most ``limit`` characters."""
        return self.value[: limit * 4].decode("utf-8", "replace")[:limit]

    def excerpt(self, width: int = 40) -> str:
        """The start of the value on one line, ``…`` when cut."""
        flat = " ".join(self.text(width * 4).split())
        return flat if len(flat) <= width else flat[: width - 1] + "…"

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of the CLI's ``--json`` lines and the API's ``dead_letters``."""
        return {
            "time": format_time(self.timestamp_ms),
            "timestamp_ms": self.timestamp_ms,
            "reason": self.reason,
            "detail": self.detail,
            "source": self.source,
            "key": self.key,
            "value": self.text(),
            "value_bytes": len(self.value),
        }


@dataclass(slots=True)
class DeadLetterPage:
    """What one read found: the newest ``limit`` dead letters, oldest first."""

    topic: str
    letters: list[DeadLetter] = field(default_factory=list)
    #: Matching dead letters, each source once (``letters`` holds the newest ``limit``).
    matched: int = 0
    #: Repeated copies of a source that were left out.
    duplicates: int = 0
    #: False when reading stopped at the timeout before the topic's end.
    complete: bool = True

    def as_dict(self, *, since_ms: int | None, reason: str | None, limit: int) -> dict[str, Any]:
        """The read API's ``DeadLetters`` body."""
        return {
            "topic": self.topic,
            "since": format_time(since_ms) if since_ms is not None else None,
            "reason": reason,
            "limit": limit,
            "matched": self.matched,
            "duplicates": self.duplicates,
            "complete": self.complete,
            "dead_letters": [letter.as_dict() for letter in self.letters],
        }


def _header(headers: Iterable[tuple[str, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("utf-8", "replace")
    return None


async def read_dead_letters(
    settings: Settings,
    *,
    since_ms: int | None = None,
    reason: str | None = None,
    limit: int = DEFAULT_LIMIT,
    timeout_s: float = READ_TIMEOUT_S,
) -> DeadLetterPage:
    """The newest ``limit`` dead letters (of ``reason``, dead-lettered at or after
    ``since_ms``), oldest first, each ``source`` once.

    Reads every partition from ``since_ms`` (or its beginning) to its end offset at the time
    of the call. A missing topic reads as empty; an unreachable broker raises aiokafka's
    connection error.
    """
    if limit < 1:
        raise InvalidInput(f"limit must be >= 1, got {limit}")
    topic = settings.dead_letter_topic
    page = DeadLetterPage(topic)
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_options(), group_id=None, enable_auto_commit=False
    )
    try:
        await consumer.start()
        # The public topics() call discards the partition counts it fetched (as in EventTail).
        cluster = await consumer._client.fetch_all_metadata()
        tps = [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]
        if not tps:
            return page
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        if since_ms is not None:
            found = await consumer.offsets_for_times({tp: since_ms for tp in tps})
            starts = {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in tps}
        for tp in tps:
            consumer.seek(tp, starts[tp])
        await _scan(consumer, tps, ends, page, reason, limit, timeout_s)
    finally:
        await consumer.stop()
    return page


async def _scan(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    ends: dict[TopicPartition, int],
    page: DeadLetterPage,
    reason: str | None,
    limit: int,
    timeout_s: float,
) -> None:
    seen: set[str] = set()
    # The newest `limit` so far, as a min-heap on (time, partition, offset).
    newest: list[tuple[int, int, int, DeadLetter]] = []
    left = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
    consumer.pause(*[tp for tp in tps if tp not in left])
    deadline = time.monotonic() + timeout_s
    while left:
        if time.monotonic() > deadline:
            page.complete = False
            break
        batches = await consumer.getmany(*left, timeout_ms=500)
        for tp, records in batches.items():
            for record in records:
                if record.offset >= ends[tp]:
                    continue
                headers = list(record.headers or ())
                source = _header(headers, "source") or f"{tp.topic}/{tp.partition}/{record.offset}"
                if source in seen:
                    page.duplicates += 1
                    continue
                seen.add(source)
                why = _header(headers, "reason") or "unknown"
                if reason is not None and why != reason:
                    continue
                page.matched += 1
                letter = DeadLetter(
                    timestamp_ms=record.timestamp,
                    reason=why,
                    detail=_header(headers, "detail") or "",
                    source=source,
                    key=record.key.decode("utf-8", "replace") if record.key is not None else None,
                    value=record.value or b"",
                    partition=tp.partition,
                    offset=record.offset,
                )
                item = (record.timestamp, tp.partition, record.offset, letter)
                if len(newest) < limit:
                    heapq.heappush(newest, item)
                elif item[:3] > newest[0][:3]:
                    heapq.heapreplace(newest, item)
        done = [tp for tp in left if await consumer.position(tp) >= ends[tp]]
        if done:
            consumer.pause(*done)
            left = [tp for tp in left if tp not in done]
    page.letters = [item[3] for item in sorted(newest, key=lambda i: i[:3])]
