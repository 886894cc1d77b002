"""The Redis mirror of the ranker's state: the write per record key, and the marker."""

from __future__ import annotations

import pytest

from aggregations.ranker_state import (
    RankerState,
    closed_record,
    encode_top,
    finalized_record,
    late_record,
    published_record,
)
from aggregations.rankings import Ranked
from aggregations.weeks import week_start_ms
from streams.leader.state_mirror import MirrorMarker, mirror_command
from streams.store.keys import RedisKeys

KEYS = RedisKeys("tb")
WEEK = "2026-W47"
TOP = [Ranked(1, "a", 300), Ranked(2, "b:x", 200)]


def holding(*records: tuple[str, bytes | None]) -> RankerState:
    return RankerState.from_records(records)


def test_closed_week_is_added_with_its_start() -> None:
    """A closed week is a member of weeks:closed scored by its start."""
    key, _ = closed_record(WEEK)
    command = mirror_command(KEYS, holding(closed_record(WEEK)), key)
    assert command == ("ZADD", "tb:weeks:closed", week_start_ms(WEEK), WEEK)


def test_tombstoned_closed_week_is_removed() -> None:
    """A closed record the state no longer holds removes the week from weeks:closed."""
    key, _ = closed_record(WEEK)
    assert mirror_command(KEYS, RankerState(), key) == ("ZREM", "tb:weeks:closed", WEEK)


def test_finalized_week() -> None:
    """A finalized week is added to, and once gone removed from, the finalized set."""
    key, _ = finalized_record(WEEK)
    assert mirror_command(KEYS, holding(finalized_record(WEEK)), key) == (
        "SADD",
        "tb:finalized",
        WEEK,
    )
    assert mirror_command(KEYS, RankerState(), key) == ("SREM", "tb:finalized", WEEK)


def test_late_alerted_count_and_tokens() -> None:
    """The late count alerted and the total then are two fields of late:alerted."""
    key, _ = late_record(WEEK, 4, 900)
    command = mirror_command(KEYS, holding(late_record(WEEK, 4, 900)), key)
    assert command == ("HSET", "tb:late:alerted", WEEK, 4, f"{WEEK}:tokens", 900)
    assert mirror_command(KEYS, RankerState(), key) == (
        "HDEL",
        "tb:late:alerted",
        WEEK,
        f"{WEEK}:tokens",
    )


def test_published_top_n() -> None:
    """A published top N is its JSON under published:{dim}:{week}, deleted once gone."""
    key, _ = published_record("model", WEEK, TOP)
    command = mirror_command(KEYS, holding(published_record("model", WEEK, TOP)), key)
    assert command == ("SET", f"tb:published:model:{WEEK}", encode_top(TOP))
    assert mirror_command(KEYS, RankerState(), key) == ("DEL", f"tb:published:model:{WEEK}")


def test_mirror_shows_latest_value() -> None:
    """The mirror writes what the state holds now, not the record's own value."""
    newer = [Ranked(1, "b:x", 400)]
    state = holding(published_record("model", WEEK, TOP), published_record("model", WEEK, newer))
    key, _ = published_record("model", WEEK, TOP)
    assert mirror_command(KEYS, state, key)[2] == encode_top(newer)


def test_malformed_key_is_rejected() -> None:
    """A key that is no ranker-state key raises ValueError instead of writing anything."""
    with pytest.raises(ValueError):
        mirror_command(KEYS, RankerState(), "weeks:2026-W47")


def test_marker_value_names_token_and_version() -> None:
    """The marker's value is "token:version"; bump adds one to the version."""
    marker = MirrorMarker("abc", 2)
    marker.bump()
    assert marker.value == "abc:3"


def test_marker_renew() -> None:
    """A renewed marker has a new token and version 0: no earlier marker equals it."""
    marker = MirrorMarker()
    marker.renew()
    first = marker.value
    marker.bump()
    marker.renew()
    assert marker.version == 0
    assert marker.value.endswith(":0")
    assert marker.value != first
