"""The idempotent fold of partial sums: replays, zombies and block changes stay exact."""

from __future__ import annotations

import pytest

from aggregations.totals import (
    Partial,
    apply_partial,
    counts_of,
    expired_keys,
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
