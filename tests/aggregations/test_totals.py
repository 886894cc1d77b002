"""The idempotent fold of partial sums: replays, zombies and block changes stay exact."""

from __future__ import annotations

import itertools

import pytest

from aggregations.totals import (
    DIMENSIONS,
    NO_APP,
    RANKED_DIMENSIONS,
    UNRANKED_MEMBERS,
    Partial,
    TableValue,
    apply_partial,
    counts_of,
    expired_keys,
    is_ranked,
    is_stale,
    split_key,
    table_key,
)
from aggregations.weeks import week_start_ms

DAY = "2026-11-16"


def make_partial(block: int = 0, end: int = 10, tokens: int = 100, **overrides: object) -> Partial:
    """A partial with one day of counts; ``tokens`` split 3:1 into prompt and completion."""
    fields: dict[str, object] = {
        "key": "model:2026-W47:m1",
        "source": 0,
        "block": block,
        "end": end,
        "days": {DAY: [tokens, tokens * 3 // 4, tokens - tokens * 3 // 4, 1, 0]},
        "max_ts": 1,
        "meta": None,
    }
    fields.update(overrides)
    return Partial(**fields)  # type: ignore[arg-type]


def fold(*partials: Partial) -> dict[str, object] | None:
    """Fold partials in order, skipping replays, and return the final value."""
    value = None
    for partial in partials:
        value = apply_partial(value, partial) or value
    return value


@pytest.mark.parametrize(
    ("partials", "tokens"),
    [
        ([make_partial(0, 10, 100)], 100),
        ([make_partial(0, 10, 100), make_partial(0, 10, 100)], 100),
        ([make_partial(0, 10, 100), make_partial(0, 20, 150)], 150),
        ([make_partial(0, 20, 150), make_partial(0, 10, 100)], 150),
        ([make_partial(0, 10, 100), make_partial(1, 5, 30)], 130),
        ([make_partial(0, 10, 100), make_partial(1, 5, 30), make_partial(0, 30, 999)], 130),
        ([make_partial(0, 10, 100), make_partial(0, 10, 100, source=1)], 200),
    ],
    ids=["one", "replayed", "grown", "stale", "next-block", "zombie-after-move", "two-sources"],
)
def test_fold_applies_each_position_once(partials: list[Partial], tokens: int) -> None:
    """Cumulative partials add up to the true sum whatever the replays and their order."""
    value = fold(*partials)
    assert value is not None
    assert counts_of(value)["tokens"] == tokens
    assert sum(day[0] for day in value["d"].values()) == tokens  # type: ignore[union-attr]


def test_replay_returns_none() -> None:
    """A partial at or behind the applied position reports itself as a replay."""
    value = apply_partial(None, make_partial(0, 10))
    assert value is not None
    assert apply_partial(value, make_partial(0, 10)) is None
    assert apply_partial(value, make_partial(0, 9)) is None


def test_fold_keeps_meta_and_max_event_time() -> None:
    """Model metadata and the largest event time survive the fold."""
    value = fold(
        make_partial(0, 1, max_ts=50, meta=("M", "V", "CN")), make_partial(0, 2, max_ts=40)
    )
    assert value is not None
    assert value["ts"] == 50
    assert value["m"] == ["M", "V", "CN"]


def test_table_key_round_trip_with_colons() -> None:
    """Members may contain ':' (e.g. ':free' model variants)."""
    key = table_key("model", "2026-W47", "openai/gpt-oss:free")
    assert split_key(key) == ("model", "2026-W47", "openai/gpt-oss:free")


def test_expired_keys_counts_back_from_event_time() -> None:
    """Weeks that ended more than the retention before the newest event are expired."""
    newest = week_start_ms("2026-W47")
    keys = ["total:2026-W20:all", "total:2026-W21:all", "model:2026-W46:m", "total:2026-W47:all"]
    assert expired_keys(keys, newest, retention_weeks=26) == ["total:2026-W20:all"]


def fold_all(partials: list[Partial]) -> TableValue:
    """The value after folding ``partials`` in order (replays skipped)."""
    value: TableValue | None = None
    for partial in partials:
        value = apply_partial(value, partial) or value
    assert value is not None
    return value


def partial_at(source: int, block: int, end: int, tokens: int) -> Partial:
    """A partial of the week total with cumulative ``tokens`` on one day."""
    return Partial(
        "total:2026-W47:all", source, block, end, {"2026-11-18": [tokens, 0, 0, 1, 0]}, 0
    )


def test_is_stale_orders_states_of_one_owner() -> None:
    """Each state the owner wrote supersedes the ones before; none is stale against them."""
    history = [partial_at(0, 0, 10, 5), partial_at(1, 0, 3, 2), partial_at(0, 0, 20, 9),
               partial_at(0, 1, 25, 1)]  # fmt: skip
    states = [fold_all(history[: i + 1]) for i in range(len(history))]
    for older, newer in itertools.pairwise(states):
        assert is_stale(older, newer)
        assert not is_stale(newer, older)
    assert not is_stale(states[-1], states[-1])


def test_a_zombie_write_is_stale_against_the_owner() -> None:
    """A stalled worker folding an old record onto its old state writes a stale value."""
    base = [partial_at(0, 0, 10, 5), partial_at(1, 0, 3, 2)]
    zombie = fold_all([*base, partial_at(0, 0, 20, 9)])
    owner = fold_all([*base, partial_at(0, 0, 20, 9), partial_at(1, 0, 8, 4)])
    assert is_stale(zombie, owner)
    assert not is_stale(owner, zombie)


def test_states_each_ahead_somewhere_are_not_stale() -> None:
    """Two values ahead for different sources cannot be ordered: neither is stale."""
    base = [partial_at(0, 0, 10, 5), partial_at(1, 0, 3, 2)]
    left = fold_all([*base, partial_at(0, 0, 20, 9)])
    right = fold_all([*base, partial_at(1, 0, 8, 4)])
    assert not is_stale(left, right) and not is_stale(right, left)


def test_every_dimension_is_ranked_but_total_and_app_is_among_them() -> None:
    """app is a ranked dimension with its own table keys; total is not ranked."""
    assert "app" in RANKED_DIMENSIONS and "app" in DIMENSIONS
    assert "total" not in RANKED_DIMENSIONS
    assert split_key(table_key("app", "2026-W47", NO_APP)) == ("app", "2026-W47", NO_APP)


@pytest.mark.parametrize(
    ("dimension", "member", "ranked"),
    [
        ("app", NO_APP, False),
        ("app", "support-bot", True),
        ("app", " ", True),
        ("model", NO_APP, True),
        ("vendor", "", True),
        ("country", "CN", True),
    ],
)
def test_only_the_no_app_member_is_unranked(dimension: str, member: str, ranked: bool) -> None:
    """Events without an app count for NO_APP, which is on no leaderboard; any app name an
    event can give (1 to 256 characters) is ranked, and so is every other member."""
    assert is_ranked(dimension, member) is ranked
    assert UNRANKED_MEMBERS == {"app": NO_APP} and NO_APP == ""


# Cost counts and values written before they existed -------------------------------------------
def priced(days: dict[str, list[int]], block: int = 0, end: int = 10) -> Partial:
    """A partial of today's shape (seven counts per day)."""
    return make_partial(block, end, days=days)


def test_counts_carry_cost_and_unpriced_tokens() -> None:
    """The fold adds cost and unpriced tokens like every other count."""
    value = fold(
        priced({DAY: [100, 75, 25, 1, 0, 40, 0]}),
        priced({DAY: [130, 95, 35, 2, 0, 52, 10]}, end=20),
        priced({DAY: [10, 5, 5, 1, 0, 0, 10]}, block=1, end=3),
    )
    assert value is not None
    counts = counts_of(value)
    assert (counts["tokens"], counts["cost_micro_usd"], counts["unpriced_tokens"]) == (140, 52, 20)


def test_old_partials_count_as_unpriced() -> None:
    """A partial of a version without cost (five counts) has no priced token: cost 0 and
    every token unpriced, never a cost of 0 for priced tokens."""
    value = apply_partial(None, make_partial(0, 10, 100))
    assert value is not None
    assert counts_of(value)["cost_micro_usd"] == 0
    assert counts_of(value)["unpriced_tokens"] == 100
    assert value["d"][DAY][5:] == [0, 100]


def test_a_block_counted_again_with_prices_replaces_its_unpriced_tokens() -> None:
    """Upgrade in the middle of a block: the old stage 1 sent the block's first part without
    cost, the new one replays the block from its start with prices. The difference is taken
    against the old partial read as unpriced, so the block ends priced, exactly."""
    value = fold(make_partial(0, 10, 100), priced({DAY: [150, 112, 38, 2, 0, 90, 0]}, end=20))
    assert value is not None
    counts = counts_of(value)
    assert (counts["tokens"], counts["cost_micro_usd"], counts["unpriced_tokens"]) == (150, 90, 0)


def test_a_value_stored_before_cost_existed_is_widened_whole() -> None:
    """A table value of an older version (five counts in c, d and src) is read as all
    unpriced before the next partial is added; its stored form is today's afterwards."""
    old: TableValue = {
        "c": [100, 75, 25, 1, 0],
        "d": {DAY: [100, 75, 25, 1, 0]},
        "ts": 1,
        "src": {"0": [0, 10, {DAY: [100, 75, 25, 1, 0]}]},
    }
    value = apply_partial(old, priced({DAY: [20, 15, 5, 1, 0, 8, 0]}, block=1, end=4))
    assert value is not None
    assert value["c"] == [120, 90, 30, 2, 0, 8, 100]
    assert value["d"][DAY] == [120, 90, 30, 2, 0, 8, 100]
    assert value["src"]["0"] == [1, 4, {DAY: [20, 15, 5, 1, 0, 8, 0]}]
    assert counts_of(old | {"c": [5, 4, 1, 1, 0]})["unpriced_tokens"] == 5
