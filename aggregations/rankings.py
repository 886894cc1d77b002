"""Leaderboard ranking and the change events published when a top N moves.

Ranking rules (shared by models, countries and vendors): tokens descending, ties broken by
member ascending, members without tokens are not ranked, ranks are 1..n with no shared ranks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ORDERS",
    "ChangeKind",
    "Order",
    "Phase",
    "Ranked",
    "change_id",
    "rank",
    "rank_changes",
    "rank_of",
]

Phase = Literal["live", "final"]
#: What a leaderboard is ranked by: tokens, or spend (the cost of the tokens that had a
#: price, aggregations/prices.py); the ranking rules are the same.
Order = Literal["tokens", "spend"]
ORDERS: tuple[Order, ...] = ("tokens", "spend")
ChangeKind = Literal["entered", "dropped", "moved_up", "moved_down", "new_leader"]


@dataclass(frozen=True, slots=True)
class Ranked:
    """One row of a leaderboard: a member, its 1-based rank and its token count."""

    rank: int
    member: str
    tokens: int


def rank(totals: Mapping[str, int]) -> list[Ranked]:
    """Rank ``totals`` (member -> tokens) by the leaderboard rules; zero/negative are dropped."""
    ordered = sorted(
        ((member, tokens) for member, tokens in totals.items() if tokens > 0),
        key=lambda item: (-item[1], item[0]),
    )
    return [
        Ranked(position, member, tokens) for position, (member, tokens) in enumerate(ordered, 1)
    ]


def rank_of(ranking: Sequence[Ranked]) -> dict[str, int]:
    """Map each member of ``ranking`` to its rank."""
    return {row.member: row.rank for row in ranking}


def change_id(
    dimension: str,
    week: str,
    phase: str,
    kind: str,
    member: str,
    old_rank: int | None,
    new_rank: int | None,
) -> str:
    """Return the deterministic id (sha1 hex) of one ranking change.

    Recomputing the same change after a restart must give the same id so that consumers can
    drop duplicates. JSON keeps the encoding unambiguous: members may contain any character.
    """
    payload = json.dumps(
        [dimension, week, phase, kind, member, old_rank, new_rank],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()


def _change(
    dimension: str,
    week: str,
    phase: Phase,
    kind: ChangeKind,
    member: str,
    old_rank: int | None,
    new_rank: int | None,
    tokens: int,
) -> dict[str, Any]:
    return {
        "id": change_id(dimension, week, phase, kind, member, old_rank, new_rank),
        "type": "ranking_change",
        "kind": kind,
        "dimension": dimension,
        "week": week,
        "phase": phase,
        "member": member,
        "old_rank": old_rank,
        "new_rank": new_rank,
        "tokens": tokens,
    }


def rank_changes(
    dimension: str,
    week: str,
    previous: Sequence[Ranked],
    current: Sequence[Ranked],
    top_n: int,
    phase: Phase,
) -> list[dict[str, Any]]:
    """Compare two top-N lists and return the ranking-change events between them.

    ``previous`` is whatever the caller last published (the same week's top N for ``live``,
    the previous week's final top N for ``final``). Only the first ``top_n`` rows of each list
    are compared. A member that left the top N gets ``new_rank=None`` and its last published
    tokens, because its rank outside the top N is not known here. ``new_leader`` is emitted in
    addition to the leader's own entered/moved event whenever rank 1 changes hands, including
    when nothing was published before. Order: ``new_leader``, then by new rank, then
    ``dropped`` by old rank.
    """
    before = {row.member: row for row in previous[:top_n]}
    after = list(current[:top_n])
    changes: list[dict[str, Any]] = []

    if after and (not before or after[0].member != previous[0].member):
        leader = after[0]
        old = before.get(leader.member)
        changes.append(
            _change(
                dimension,
                week,
                phase,
                "new_leader",
                leader.member,
                old.rank if old else None,
                leader.rank,
                leader.tokens,
            )
        )

    for row in after:
        old = before.get(row.member)
        kind: ChangeKind
        if old is None:
            kind = "entered"
        elif row.rank < old.rank:
            kind = "moved_up"
        elif row.rank > old.rank:
            kind = "moved_down"
        else:
            continue
        changes.append(
            _change(
                dimension,
                week,
                phase,
                kind,
                row.member,
                old.rank if old else None,
                row.rank,
                row.tokens,
            )
        )

    still_in = {row.member for row in after}
    for old in sorted(before.values(), key=lambda row: row.rank):
        if old.member not in still_in:
            changes.append(
                _change(dimension, week, phase, "dropped", old.member, old.rank, None, old.tokens)
            )
    return changes
