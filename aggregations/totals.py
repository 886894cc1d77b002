"""Table keys, counts and the idempotent fold of partial sums into weekly totals.

A table value is a plain JSON-able dict so that it travels through Faust's changelog as is::

    {"c": [tokens, prompt, completion, calls, late,      # the week's counts
           cost_micro_usd, unpriced_tokens],
     "d": {"2026-11-16": [...7 counts...], ...},         # daily buckets (UTC)
     "ts": 1763251200000,                                # largest event time seen
     "m": ["DeepSeek-V4-Flash", "DeepSeek", "CN"],       # model metadata (model keys only)
     "src": {"3": [block, end_offset, {day: counts}]}}   # last partial applied per source

See ARCHITECTURE.md ("Exact counts without Kafka transactions") for why ``src`` makes the
fold idempotent.

Cost (:mod:`aggregations.prices`) is counted next to tokens: ``cost_micro_usd`` sums the
costs of the events that had a price, ``unpriced_tokens`` the tokens of those that had none.
Counts vectors written before cost was counted have five counts; they are read as
:func:`widen` says: cost 0 and every token unpriced (nothing was priced then), never as a
cost of 0 for priced tokens.
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
TOKENS, PROMPT, COMPLETION, CALLS, LATE, COST, UNPRICED = range(7)
COUNT_FIELDS = (
    "tokens",
    "prompt",
    "completion",
    "calls",
    "late",
    "cost_micro_usd",
    "unpriced_tokens",
)
N_COUNTS = len(COUNT_FIELDS)
#: Counts of a vector from before cost was counted (tokens ... late).
LEGACY_COUNTS = 5

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


def widen(counts: list[int]) -> list[int]:
    """``counts`` with all :data:`N_COUNTS` counts: a vector of an older version (its first
    :data:`LEGACY_COUNTS`, whatever follows) gets cost 0 and all its tokens unpriced.

    Every vector of a value is widened the same way (see :func:`apply_partial`), so the
    differences the fold takes between them stay consistent: a block counted again with
    prices replaces its unpriced tokens by their cost.
    """
    return counts if len(counts) >= N_COUNTS else _legacy(counts)


def _legacy(counts: list[int]) -> list[int]:
    """A vector of a value written before cost was counted: see :func:`widen`."""
    legacy = list(counts[:LEGACY_COUNTS])
    return [*legacy, 0, legacy[TOKENS]]


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
    if len(state["c"]) < N_COUNTS:
        _widen_value(state)
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
    days = {d: widen(list(c)) for d, c in partial.days.items()}
    for day, cumulative in days.items():
        before = base.get(day)
        if before is not None:
            before = widen(before)
        bucket = daily.setdefault(day, zero_counts())
        for i in range(N_COUNTS):
            delta = cumulative[i] - (before[i] if before is not None else 0)
            bucket[i] += delta
            counts[i] += delta
    sources[source] = [partial.block, partial.end, days]
    if partial.max_ts > state["ts"]:
        state["ts"] = partial.max_ts
    if partial.meta is not None:
        state["m"] = list(partial.meta)
    return state


def _widen_value(state: TableValue) -> None:
    """A value written before cost was counted, with every vector in today's shape.

    Its weekly counts decide: an older version may have stored newer partials' vectors in
    ``src`` while keeping five counts in ``c`` and ``d``, so all of them are read as five
    counts (:func:`_legacy`), or the differences the fold takes would not match the counts.
    """
    state["c"] = _legacy(state["c"])
    state["d"] = {day: _legacy(c) for day, c in state["d"].items()}
    for position in state.get("src", {}).values():
        position[2] = {day: _legacy(c) for day, c in position[2].items()}


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
    """The week's counts of a table value by field name (an older value widened)."""
    return dict(zip(COUNT_FIELDS, widen(list(value["c"])), strict=True))
