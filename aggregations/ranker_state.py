"""What the ranker already published, as the records of its compacted state topic.

The ranker (``streams/leader/ranker.py``) must never publish a fact again under a new id, so what it
already did has to outlive Redis: the closed weeks, the finalized weeks (final ranking
changes and week alerts published), the top N it last published per dimension and week (the
list live changes are computed from), and the late-event count already alerted per week.
Each of those facts is one record of a compacted Kafka topic, keyed by kind, dimension and
week. The latest value of a key wins and a tombstone (no value) deletes it, which is exactly
what compaction keeps, so folding the topic from its beginning rebuilds the state.

This module is the pure half: record keys and values, and the fold. ``streams/leader/state_log.py``
reads and writes the topic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import orjson

from aggregations.rankings import Ranked

__all__ = [
    "CLOSED",
    "FINALIZED",
    "LATE",
    "PUBLISHED",
    "RankerState",
    "Record",
    "closed_record",
    "decode_top",
    "encode_top",
    "finalized_record",
    "late_record",
    "parse_key",
    "published_record",
    "week_tombstones",
]

#: A state-topic record: key text and value bytes, ``None`` for a tombstone.
Record = tuple[str, bytes | None]

CLOSED = "closed"
FINALIZED = "finalized"
PUBLISHED = "published"
LATE = "late"
_PRESENT = b"1"


def encode_top(top: Sequence[Ranked]) -> bytes:
    """A published top N as JSON ``[[member, rank, tokens], ...]`` (also its Redis value)."""
    return orjson.dumps([[row.member, row.rank, row.tokens] for row in top])


def decode_top(raw: bytes | str) -> list[Ranked]:
    """The inverse of :func:`encode_top`; ``ValueError`` when ``raw`` is not such a list."""
    try:
        rows = orjson.loads(raw)
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise TypeError("not a list of rows")
        return [Ranked(rank=int(r), member=str(m), tokens=int(t)) for m, r, t in rows]
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise ValueError(f"not a published top N: {raw!r:.80}") from exc


def closed_record(week: str) -> Record:
    """The week was closed: it gets no more live changes and is never closed again."""
    return f"{CLOSED}:{week}", _PRESENT


def finalized_record(week: str) -> Record:
    """The week's final ranking changes and week alerts were published."""
    return f"{FINALIZED}:{week}", _PRESENT


def published_record(dimension: str, week: str, top: Sequence[Ranked]) -> Record:
    """The top N of ``dimension`` last published for ``week``."""
    return f"{PUBLISHED}:{dimension}:{week}", encode_top(top)


def late_record(week: str, late: int, tokens: int) -> Record:
    """The week's late-event count and total tokens as of its last alert (or its closing)."""
    return f"{LATE}:{week}", orjson.dumps([late, tokens])


def week_tombstones(week: str, dimensions: Iterable[str]) -> list[Record]:
    """Tombstones for every record a week can have, whether or not it has them."""
    keys = [f"{CLOSED}:{week}", f"{FINALIZED}:{week}", f"{LATE}:{week}"]
    keys += [f"{PUBLISHED}:{dimension}:{week}" for dimension in dimensions]
    return [(key, None) for key in keys]


def parse_key(key: str | bytes) -> tuple[str, str | None, str]:
    """``(kind, dimension or None, week)`` of a record key; ``ValueError`` when malformed.

    Neither dimension names nor week ids contain ``:``.
    """
    text = key.decode() if isinstance(key, bytes) else key
    kind, _, rest = text.partition(":")
    if kind == PUBLISHED:
        dimension, _, week = rest.partition(":")
        if dimension and week:
            return kind, dimension, week
    elif kind in (CLOSED, FINALIZED, LATE) and rest and ":" not in rest:
        return kind, None, rest
    raise ValueError(f"not a ranker state key: {text!r:.80}")


@dataclass
class RankerState:
    """The ranker's durable memory, rebuilt by folding its state records in topic order."""

    closed: set[str] = field(default_factory=set)
    finalized: set[str] = field(default_factory=set)
    #: (dimension, week) -> the top N last published
    published: dict[tuple[str, str], list[Ranked]] = field(default_factory=dict)
    #: week -> (late-event count, total tokens) already reported
    late: dict[str, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def from_records(cls, records: Iterable[Record]) -> RankerState:
        """The state a topic holding ``records`` (in order) stands for."""
        state = cls()
        state.apply_all(records)
        return state

    def apply(self, key: str | bytes, value: bytes | None) -> None:
        """Fold one record: its value replaces the key's, a tombstone removes it.

        ``ValueError`` for a malformed key or value; the state is then left unchanged.
        """
        kind, dimension, week = parse_key(key)
        if kind == PUBLISHED:
            assert dimension is not None
            if value is None:
                self.published.pop((dimension, week), None)
            else:
                self.published[(dimension, week)] = decode_top(value)
        elif kind == LATE:
            if value is None:
                self.late.pop(week, None)
            else:
                self.late[week] = _decode_late(value)
        else:
            weeks = self.closed if kind == CLOSED else self.finalized
            if value is None:
                weeks.discard(week)
            else:
                weeks.add(week)

    def apply_all(self, records: Iterable[Record]) -> None:
        """Fold records in order."""
        for key, value in records:
            self.apply(key, value)

    def records(self) -> list[Record]:
        """One record per fact held: what a fully compacted topic would contain."""
        out = [closed_record(week) for week in sorted(self.closed)]
        out += [finalized_record(week) for week in sorted(self.finalized)]
        out += [
            published_record(dimension, week, top)
            for (dimension, week), top in sorted(self.published.items())
        ]
        out += [late_record(week, *self.late[week]) for week in sorted(self.late)]
        return out

    def weeks(self) -> set[str]:
        """Every week the state holds a fact about."""
        return self.closed | self.finalized | {week for _, week in self.published} | set(self.late)


def _decode_late(raw: bytes) -> tuple[int, int]:
    try:
        late, tokens = orjson.loads(raw)
        return int(late), int(tokens)
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise ValueError(f"not a late-alert record: {raw!r:.80}") from exc
