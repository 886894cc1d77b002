"""Leaderboard ranking rules and ranking-change events."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from aggregations.rankings import Ranked, change_id, rank, rank_changes, rank_of


def ranked(*members: tuple[str, int]) -> list[Ranked]:
    """A ranking in the given order, ranks 1..n."""
    return [
        Ranked(position, member, tokens) for position, (member, tokens) in enumerate(members, 1)
    ]


def brief(changes: list[dict[str, Any]]) -> list[tuple[str, str, int | None, int | None]]:
    """The (kind, member, old_rank, new_rank) of each change, in order."""
    return [(c["kind"], c["member"], c["old_rank"], c["new_rank"]) for c in changes]


@pytest.mark.parametrize(
    ("totals", "expected"),
    [
        ({}, []),
        ({"a": 5}, [Ranked(1, "a", 5)]),
        ({"a": 1, "b": 3, "c": 2}, [Ranked(1, "b", 3), Ranked(2, "c", 2), Ranked(3, "a", 1)]),
        ({"b": 7, "a": 7, "c": 9}, [Ranked(1, "c", 9), Ranked(2, "a", 7), Ranked(3, "b", 7)]),
        ({"a": 0, "b": -4, "c": 1}, [Ranked(1, "c", 1)]),
        ({"a": 0}, []),
        ({"x:y": 2, "x": 2}, [Ranked(1, "x", 2), Ranked(2, "x:y", 2)]),
    ],
)
def test_rank(totals: dict[str, int], expected: list[Ranked]) -> None:
    """Tokens descending, ties by member ascending, no shared ranks, no zero/negative members."""
    assert rank(totals) == expected


def test_rank_of_maps_members_to_ranks() -> None:
    """rank_of inverts a ranking into member -> rank."""
    assert rank_of(rank({"a": 1, "b": 3, "c": 2})) == {"b": 1, "c": 2, "a": 3}


def test_ranked_is_frozen() -> None:
    """A published row cannot be mutated in place."""
    row = Ranked(1, "a", 5)
    with pytest.raises(AttributeError):
        row.rank = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("previous", "current", "top_n", "expected"),
    [
        pytest.param(
            ranked(("a", 9), ("b", 5)),
            ranked(("a", 12), ("b", 6)),
            10,
            [],
            id="same-order-new-tokens",
        ),
        pytest.param(
            ranked(("a", 9), ("b", 5), ("c", 4)),
            ranked(("b", 10), ("a", 9), ("c", 4)),
            10,
            [("new_leader", "b", 2, 1), ("moved_up", "b", 2, 1), ("moved_down", "a", 1, 2)],
            id="leader-swap",
        ),
        pytest.param(
            ranked(("a", 9), ("b", 5), ("c", 4)),
            ranked(("a", 9), ("b", 5), ("d", 4)),
            3,
            [("entered", "d", None, 3), ("dropped", "c", 3, None)],
            id="enter-and-drop",
        ),
        pytest.param(
            [],
            ranked(("a", 9), ("b", 5)),
            10,
            [("new_leader", "a", None, 1), ("entered", "a", None, 1), ("entered", "b", None, 2)],
            id="nothing-published-yet",
        ),
        pytest.param(
            ranked(("a", 9), ("b", 5)),
            [],
            10,
            [("dropped", "a", 1, None), ("dropped", "b", 2, None)],
            id="everyone-gone",
        ),
        pytest.param(
            ranked(("a", 9), ("b", 5), ("c", 4), ("d", 3)),
            ranked(("a", 9), ("b", 5), ("d", 4), ("c", 3)),
            2,
            [],
            id="moves-below-top-n-are-ignored",
        ),
        pytest.param(
            ranked(("a", 9), ("b", 5), ("c", 4), ("d", 3)),
            ranked(("x", 20), ("c", 9), ("a", 8), ("e", 1)),
            4,
            [
                ("new_leader", "x", None, 1),
                ("entered", "x", None, 1),
                ("moved_up", "c", 3, 2),
                ("moved_down", "a", 1, 3),
                ("entered", "e", None, 4),
                ("dropped", "b", 2, None),
                ("dropped", "d", 4, None),
            ],
            id="order-leader-then-new-rank-then-dropped",
        ),
    ],
)
def test_rank_changes(
    previous: list[Ranked],
    current: list[Ranked],
    top_n: int,
    expected: list[tuple[str, str, int | None, int | None]],
) -> None:
    """Changes between two top-N lists come out with the right kinds, ranks and order."""
    changes = rank_changes("model", "2026-W47", previous, current, top_n, "live")
    assert brief(changes) == expected


def test_rank_change_fields() -> None:
    """Each change carries the full event shape; dropped members keep their last tokens."""
    changes = rank_changes(
        "country", "2026-W47", ranked(("US", 9), ("CN", 5)), ranked(("CN", 11)), 10, "final"
    )
    leader, moved, dropped = changes
    assert leader == {
        "id": change_id("country", "2026-W47", "final", "new_leader", "CN", 2, 1),
        "type": "ranking_change",
        "kind": "new_leader",
        "dimension": "country",
        "week": "2026-W47",
        "phase": "final",
        "member": "CN",
        "old_rank": 2,
        "new_rank": 1,
        "tokens": 11,
    }
    assert moved["kind"] == "moved_up"
    assert moved["tokens"] == 11
    assert dropped["kind"] == "dropped"
    assert dropped["tokens"] == 9
    assert json.loads(json.dumps(changes)) == changes


def test_change_id_is_sha1_of_identifying_fields() -> None:
    """The id is the sha1 hex of (dimension, week, phase, kind, member, old_rank, new_rank)."""
    payload = json.dumps(
        ["model", "2026-W47", "live", "entered", "a", None, 3], separators=(",", ":")
    )
    expected = hashlib.sha1(payload.encode()).hexdigest()
    assert change_id("model", "2026-W47", "live", "entered", "a", None, 3) == expected
    assert len(expected) == 40


def test_change_ids_are_deterministic() -> None:
    """Recomputing the same changes gives the same ids, so consumers can deduplicate."""
    previous, current = ranked(("a", 9), ("b", 5)), ranked(("b", 10), ("a", 9))
    first = rank_changes("model", "2026-W47", previous, current, 10, "live")
    again = rank_changes("model", "2026-W47", list(previous), list(current), 10, "live")
    assert [c["id"] for c in first] == [c["id"] for c in again]
    assert len({c["id"] for c in first}) == len(first)


@pytest.mark.parametrize(
    "other",
    [
        ("vendor", "2026-W47", "live", "entered", "a", None, 1),
        ("model", "2026-W48", "live", "entered", "a", None, 1),
        ("model", "2026-W47", "final", "entered", "a", None, 1),
        ("model", "2026-W47", "live", "new_leader", "a", None, 1),
        ("model", "2026-W47", "live", "entered", "b", None, 1),
        ("model", "2026-W47", "live", "entered", "a", 2, 1),
        ("model", "2026-W47", "live", "entered", "a", None, 2),
        ("model", "2026-W47", "live", "entered", "a", None, "1"),
    ],
)
def test_change_ids_differ_when_any_identifying_field_differs(other: tuple[Any, ...]) -> None:
    """Changing any identifying field changes the id."""
    base = change_id("model", "2026-W47", "live", "entered", "a", None, 1)
    assert change_id(*other) != base
