"""The ranker's pure decision rules: when a week is due to close, when its total settled, and
the ids of live ranking changes. No I/O: :mod:`streams.leader.ranker` reads Redis and acts."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import orjson

from aggregations.rankings import Ranked
from aggregations.weeks import week_end_ms

__all__ = ["SETTLE_MS", "SettleWatch", "live_basis", "live_event_id", "week_due"]

SETTLE_MS = 3000


def week_due(
    week: str, closing_ms: int, now_ms: int, changed_at_ms: int, grace_ms: int, idle_ms: int
) -> bool:
    """True when ``week`` may close: its end plus ``grace_ms`` is behind the closing watermark,
    or behind the wall clock while no snapshot changed anything for ``idle_ms``."""
    end = week_end_ms(week) + grace_ms
    return closing_ms >= end or (now_ms >= end and now_ms - changed_at_ms >= idle_ms)


class SettleWatch:
    """Remembers, per week, the total last seen and since when it stands still."""

    def __init__(self, settle_ms: int = SETTLE_MS) -> None:
        self.settle_ms = settle_ms
        #: week -> (total tokens as Redis answered it, wall time ms it was first seen)
        self._seen: dict[str, tuple[str | None, int]] = {}

    def settled(self, week: str, tokens: str | None, now_ms: int) -> bool:
        """True once the week's total ``tokens`` stopped changing for ``settle_ms``.

        A second guard next to the closing watermark: the idle rule closes on the wall
        clock, and a week's final rankings must not be computed while a rewrite (or a
        partition the progress does not cover) is still adding to it.
        """
        seen = self._seen.get(week)
        if seen is None or seen[0] != tokens:
            self._seen[week] = (tokens, now_ms)
            return False
        return now_ms - seen[1] >= self.settle_ms


def live_basis(before: Sequence[Ranked]) -> str:
    """Fingerprint of the published top N a live change starts from: it tells apart the
    same move made twice in a week."""
    return hashlib.sha1(orjson.dumps([[r.member, r.rank] for r in before])).hexdigest()


def live_event_id(change_id: str, basis: str) -> str:
    """The id of a live ranking change: its change id qualified by :func:`live_basis`."""
    return hashlib.sha1(f"{change_id}|{basis}".encode()).hexdigest()
