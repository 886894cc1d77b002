"""The incremental rank fields' pure half: boards as read from Redis, the encoded field values,
the top N, and which members a diff of two boards says to rewrite."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregations.rankings import Ranked, rank
from streams.leader.rank_fields import (
    MEMBER_FIELDS,
    Board,
    board_of,
    changed_members,
    changed_positions,
    encode_value,
    member_fields,
    member_values,
    top_of,
)

#: Few names and few token values: ties, members on one board only, members that move.
names = st.sampled_from([f"m{i}" for i in range(12)] + ["a:b", "Z", "é", "m1 "])
scores = st.one_of(
    st.integers(min_value=-3, max_value=8).map(float),
    st.sampled_from([0.5, 1.5, 2.25, 2.75, 7.9, 2.0**53, 2.0**60, 2.0**70]),
)
boards = st.dictionaries(names, scores, max_size=14)
integral_boards = st.dictionaries(names, st.integers(min_value=-2, max_value=6), max_size=14)


def redis_reply(board: dict[str, float], resp3: bool) -> list[Any]:
    """What ``ZRANGE key 0 -1 WITHSCORES`` answers for ``board``: ascending by score, equal
    scores by member (bytewise, which for UTF-8 is code point order)."""
    ordered = sorted(board.items(), key=lambda item: (item[1], item[0]))
    if resp3:
        return [[m, s] for m, s in ordered]
    return [x for m, s in ordered for x in (m, repr(s))]


def reference(board: dict[str, float]) -> list[Ranked]:
    """The ranking the ranker always wrote: rank() of the board's int scores."""
    return rank({m: int(s) for m, s in board.items()})


@given(boards, st.booleans())
def test_board_of_ranks_as_rank(board: dict[str, float], resp3: bool) -> None:
    """A board read from either protocol ranks exactly as rank() of its int scores."""
    read = board_of(redis_reply(board, resp3))
    assert read.rows() == reference(board)
    assert read.card == len(board)
    assert read.total == sum(row.tokens for row in reference(board))


@given(integral_boards, st.integers(min_value=0, max_value=12))
def test_top_of_is_the_head_of_the_ranking(board: dict[str, int], n: int) -> None:
    """The top N from a superset of the head, in any order, is the ranking's first N rows."""
    reply = [x for m, s in sorted(board.items(), reverse=True) for x in (m, str(float(s)))]
    assert top_of(reply, n) == reference({m: float(s) for m, s in board.items()})[:n]


@given(
    st.integers(min_value=1, max_value=10**6),
    st.integers(min_value=0, max_value=10**15),
    st.one_of(st.none(), st.tuples(st.integers(1, 10**6), st.integers(0, 10**15))),
)
def test_member_values_are_member_fields_as_redis_py_sends_them(
    rank_now: int, tokens: int, old: tuple[int, int] | None
) -> None:
    """The write script's values are member_fields() encoded as HSET would encode them."""
    old_row = None if old is None else Ranked(old[0], "m", old[1])
    fields = member_fields(Ranked(rank_now, "m", tokens), old_row)
    assert tuple(fields) == MEMBER_FIELDS
    expected = tuple(encode_value(v) for v in fields.values())
    got = member_values(rank_now, tokens, *(old if old else (None, None)))
    assert got == expected


def test_encode_value_is_redis_py_encoding() -> None:
    """Numbers as repr, text as itself: what redis-py's encoder sends for HSET values."""
    assert [encode_value(v) for v in (3, 12.5, 1e-05, -0.0, "", "x")] == [
        "3",
        "12.5",
        "1e-05",
        "-0.0",
        "",
        "x",
    ]


def fields_of(own: Board, prev: Board) -> dict[str, tuple[str, str, str, str]]:
    """Every member's encoded rank fields computed from scratch."""
    before = {row.member: row for row in prev.rows()}
    out: dict[str, tuple[str, str, str, str]] = {}
    for row in own.rows():
        old = before.get(row.member)
        out[row.member] = member_values(
            row.rank, row.tokens, old.rank if old else None, old.tokens if old else None
        )
    return out


@settings(max_examples=300)
@given(boards, boards, boards, boards)
def test_rewriting_the_diff_gives_a_full_recompute(
    own_a: dict[str, float],
    prev_a: dict[str, float],
    own_b: dict[str, float],
    prev_b: dict[str, float],
) -> None:
    """Fields written from boards A, then only the members the diff names rewritten from
    boards B, are every member's fields computed from B (members gone from B keep theirs,
    as a full recompute also leaves them)."""
    old_own, old_prev = board_of(redis_reply(own_a, True)), board_of(redis_reply(prev_a, True))
    new_own, new_prev = board_of(redis_reply(own_b, True)), board_of(redis_reply(prev_b, True))
    written = fields_of(old_own, old_prev)
    fresh = fields_of(new_own, new_prev)
    where = new_own.index()
    rewrite = {new_own.members[i] for i in changed_positions(old_own, new_own)}
    rewrite |= {m for m in changed_members(old_prev, new_prev) if m in where}
    for member in rewrite:
        written[member] = fresh[member]
    assert {m: written[m] for m in fresh} == fresh


def bumped(board: dict[str, float], data: st.DataObject) -> dict[str, float]:
    """``board`` after a few of its members (or a new one) gained tokens: mostly small
    moves, many of them in place."""
    out = dict(board)
    choices = sorted(board) or ["m0"]
    for member in data.draw(st.lists(st.sampled_from([*choices, "new"]), max_size=3)):
        out[member] = out.get(member, 0.0) + data.draw(st.sampled_from([1.0, 0.25, 3.0]))
    return out


@settings(max_examples=500)
@given(st.dictionaries(names, st.integers(1, 40).map(lambda t: t * 4.0), max_size=10), st.data())
def test_rewriting_the_diff_of_small_moves_gives_a_full_recompute(
    own_a: dict[str, float], data: st.DataObject
) -> None:
    """As above, for the usual tick: last week holds most of this week's members, and a few
    members gained a little (one that gained without moving rank is rewritten: its WoW
    moved)."""
    prev_a = {m: data.draw(st.sampled_from([1.0, 8.0, 40.0])) for m in own_a}
    own_b = bumped(own_a, data)
    prev_b = bumped(prev_a, data) if data.draw(st.booleans()) else dict(prev_a)
    inner = test_rewriting_the_diff_gives_a_full_recompute.hypothesis.inner_test  # type: ignore[attr-defined]
    inner(own_a, prev_a, own_b, prev_b)


def test_tokens_changed_in_place_are_rewritten() -> None:
    """A member that gained tokens but kept its rank is rewritten: its WoW moved."""
    old = board_of(redis_reply({"a": 9.0, "b": 3.0}, True))
    new = board_of(redis_reply({"a": 9.0, "b": 4.0}, True))
    assert list(changed_positions(old, new)) == [1]
    assert changed_members(old, new) == {"b"}


def test_unchanged_boards_name_nobody() -> None:
    """The same board, or an equal one read again, has no member to rewrite."""
    board = board_of(redis_reply({"a": 3.0, "b": 2.0, "c": 2.0}, True))
    again = board_of(redis_reply({"a": 3.0, "b": 2.0, "c": 2.0}, False))
    assert list(changed_positions(board, board)) == []
    assert list(changed_positions(board, again)) == []
    assert changed_members(board, again) == set()


def test_still_needs_a_board_that_added_up() -> None:
    """A board is taken as unchanged only with its size and its week's total as when read,
    and only when it added up to that total."""
    board = board_of(redis_reply({"a": 3.0, "b": 2.0, "z": 0.0}, True))
    assert board.card == 3 and board.total == 5
    assert board.still(3, 5)
    assert not board.still(4, 5)
    assert not board.still(3, 6)
    assert not board_of(redis_reply({"a": 3.0}, True)).still(1, 5)
