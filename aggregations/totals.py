"""Table keys, counts and the idempotent fold of partial sums into weekly totals.

A table value is a plain JSON-able dict so that it travels through Faust's changelog as is::

    {"c": [tokens, prompt, completion, calls, late],     # the week's counts
     "d": {"2026-11-16": [...5 counts...], ...},         # daily buckets (UTC)
     "ts": 1763251200000,                                # largest event time seen
     "m": ["DeepSeek-V4-Flash", "DeepSeek", "CN"],       # model metadata (model keys only)
     "src": {"3": [block, end_offset, {day: counts}]}}   # last partial applied per source

See ARCHITECTURE.md ("Exact counts without Kafka transactions") for why ``src`` makes the
fold idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aggregations.weeks import WEEK_MS, week_end_ms

Dimension = Literal["model", "country", "vendor", "app", "total"]
#: The dimensions with a leaderboard (``total`` has one member).
RankedDimension = Literal["model", "country", "vendor", "app"]
DIMENSIONS: tuple[Dimension, ...] = ("model", "country", "vendor", "app", "total")
RANKED_DIMENSIONS: tuple[RankedDimension, ...] = ("model", "country", "vendor", "app")
TOTAL_MEMBER = "all"

#: The app member of events without an app. The empty string is the one name no event can
#: give: an ``app`` of ``""`` means "no app" (aggregations/events.py), and every other
#: string of 1 to 256 characters is a valid app. Counted like any app, so that a week's app
#: totals add up to its total, but never ranked (see :data:`UNRANKED_MEMBERS`).
NO_APP = ""
#: How views and exports name :data:`NO_APP`.
NO_APP_NAME = "(no app)"
#: Per dimension, the member that is counted but kept off the leaderboards: the snapshot
#: writer gives it a member hash but no place on the weekly and daily boards, the ranker
#: adds its tokens to the board's when it checks that the board adds up to the week's total.
UNRANKED_MEMBERS: Mapping[str, str] = {"app": NO_APP}


def is_ranked(dimension: str, member: str) -> bool:
    """True when ``member`` of ``dimension`` belongs on its leaderboards (every member but
    those of :data:`UNRANKED_MEMBERS`)."""
    return UNRANKED_MEMBERS.get(dimension) != member


#: Positions in a counts vector.
TOKENS, PROMPT, COMPLETION, CALLS, LATE = range(5)
COUNT_FIELDS = ("tokens", "prompt", "completion", "calls", "late")
N_COUNTS = len(COUNT_FIELDS)

DayCounts = dict[str, list[int]]
TableValue = dict[str, Any]


def table_key(dimension: str, week: str, member: str) -> str:
    """``"model:2026-W47:deepseek/deepseek-v4-flash"``; the member may contain ``:``."""
    return f"{dimension}:{week}:{member}"


def split_key(key: str) -> tuple[str, str, str]:
    """Inverse of :func:`table_key`."""
    dimension, week, member = key.split(":", 2)
    return dimension, week, member


def zero_counts() -> list[int]:
    """A fresh counts vector."""
    return [0] * N_COUNTS


@dataclass(frozen=True, slots=True)
class Partial:
    """Cumulative sums of one table key within one offset block of one usage partition."""

    key: str
    source: int
    block: int
    end: int
    days: Mapping[str, list[int]]
    max_ts: int
    meta: tuple[str, str, str] | None = None

    def to_wire(self) -> list[Any]:
        """Compact list form used inside partials records."""
        return [self.key, self.days, self.max_ts, list(self.meta) if self.meta else None]


def apply_partial(value: TableValue | None, partial: Partial) -> TableValue | None:
    """Fold ``partial`` into a table value; ``None`` when it was applied before.

    A newer block is added whole; the same block with a higher end adds the difference to
    what that block contributed so far; an older or equal position is a replay.
    """
    state: TableValue = value if value is not None else {"c": zero_counts(), "d": {}, "ts": 0}
    sources: dict[str, list[Any]] = state.setdefault("src", {})
    source = str(partial.source)
    previous = sources.get(source)
    if previous is None or partial.block > previous[0]:
        base: Mapping[str, list[int]] = {}
    elif partial.block == previous[0] and partial.end > previous[1]:
        base = previous[2]
    else:
        return None

    counts: list[int] = state["c"]
    daily: dict[str, list[int]] = state["d"]
    for day, cumulative in partial.days.items():
        before = base.get(day)
        bucket = daily.setdefault(day, zero_counts())
        for i in range(N_COUNTS):
            delta = cumulative[i] - (before[i] if before is not None else 0)
            bucket[i] += delta
            counts[i] += delta
    sources[source] = [partial.block, partial.end, {d: list(c) for d, c in partial.days.items()}]
    if partial.max_ts > state["ts"]:
        state["ts"] = partial.max_ts
    if partial.meta is not None:
        state["m"] = list(partial.meta)
    return state


def is_stale(candidate: TableValue, current: TableValue) -> bool:
    """True when ``candidate`` is an older state of the key than ``current``.

    Every fold only moves a value's per-source positions forward, so of two states written
    by the key's owner the later one is never behind. A value a stalled ("zombie") worker
    wrote after it lost the partition is built on an old state: it is behind the owner's
    latest value for some source and ahead for none. Values that are each ahead somewhere
    cannot be ordered this way; neither is then called stale.
    """
    ahead = candidate.get("src", {})
    behind_somewhere = False
    for source, (block, end, _) in current.get("src", {}).items():
        position = ahead.get(source)
        if position is None or (position[0], position[1]) < (block, end):
            behind_somewhere = True
    if not behind_somewhere:
        return False
    current_src = current.get("src", {})
    for source, (block, end, _) in ahead.items():
        mine = current_src.get(source)
        if mine is None or (block, end) > (mine[0], mine[1]):
            return False  # ahead for this source: not simply older
    return True


def expired_keys(keys: Iterable[str], newest_ts_ms: int, retention_weeks: int) -> list[str]:
    """Table keys whose week ended more than ``retention_weeks`` before the newest event time.

    Counting back from event time, not the wall clock, lets a replay of old history keep it.
    """
    horizon = newest_ts_ms - retention_weeks * WEEK_MS
    return [key for key in keys if week_end_ms(split_key(key)[1]) <= horizon]


def counts_of(value: TableValue) -> dict[str, int]:
    """The week's counts of a table value by field name."""
    return dict(zip(COUNT_FIELDS, value["c"], strict=True))
