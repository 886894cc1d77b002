"""Scenario replay events sum exactly to the table, spread over each week."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from aggregations.events import decode_event, encode_event
from aggregations.scenario import Scenario, replay_events, split_exact
from aggregations.weeks import week_id

SEED = Path(__file__).resolve().parents[1] / "data" / "seed-2026-w47.json"


@pytest.fixture(scope="module")
def seed() -> Scenario:
    """The shipped seed scenario."""
    return Scenario.from_mapping(orjson.loads(SEED.read_bytes()))


@pytest.mark.parametrize("total", [0, 1, 7, 10**12 + 3, 3_430_000_000_000])
@pytest.mark.parametrize("parts", [1, 3, 20])
def test_split_exact_sums_to_total(total: int, parts: int) -> None:
    """The parts add up exactly and none is negative."""
    shares = split_exact(total, parts, random.Random(1))
    assert sum(shares) == total
    assert len(shares) == parts
    assert min(shares) >= 0


def test_replay_sums_equal_every_cell(seed: Scenario) -> None:
    """Per (week, model) sums of the events equal the table exactly, in their own week."""
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for event in replay_events(seed, 7):
        sums[(week_id(event.ts_ms), event.model)] += event.tokens
    assert dict(sums) == seed.cell_totals()


def test_replay_events_are_valid_and_ordered(seed: Scenario) -> None:
    """Every event passes validation and events come in event-time order with unique ids."""
    events = list(replay_events(seed, 3))
    assert len(events) == seed.event_count(3)
    assert [e.ts_ms for e in events] == sorted(e.ts_ms for e in events)
    assert len({e.event_id for e in events}) == len(events)
    for event in events[:500]:
        assert decode_event(encode_event(event), now_ms=event.ts_ms) == event


def test_seed_week_totals(seed: Scenario) -> None:
    """The seed's 2026-W47 total is the reported 28.9T."""
    assert seed.week_totals()["2026-W47"] == 28_900_000_000_000


def test_malformed_scenario_is_rejected() -> None:
    """A row with the wrong number of cells is a clear error."""
    with pytest.raises(ValueError, match="token cells"):
        Scenario.from_mapping(
            {"name": "x", "weeks": ["2026-W47"], "models": [
                {"id": "a", "name": "A", "vendor": "V", "country": "US", "tokens": [1, 2]}]}
        )  # fmt: skip


def test_replay_streams_without_building_every_event() -> None:
    """The first events of a replay with a million events per cell come at once: nothing
    is built ahead (replay --events N once took 13 GB before sending an event)."""
    table = Scenario.from_mapping(
        {
            "name": "big",
            "weeks": ["2026-W46", "2026-W47"],
            "models": [
                {
                    "id": f"m/{i}",
                    "name": f"M{i}",
                    "vendor": "V",
                    "country": "US",
                    "tokens": [10**12, 10**12],
                }
                for i in range(50)
            ],
        }
    )
    events = replay_events(table, 1_000_000)
    first = [next(events) for _ in range(1000)]
    assert [e.ts_ms for e in first] == sorted(e.ts_ms for e in first)
    assert all(week_id(e.ts_ms) == "2026-W46" for e in first)


@pytest.mark.parametrize("parts", [1, 2, 1000])
def test_exact_shares_are_uneven_but_never_cross(parts: int) -> None:
    """Shares vary (a replay is not a flat line) and every one is within 10-190 % of even."""
    shares = split_exact(10**12, parts, random.Random(3))
    even = 10**12 / parts
    assert all(0.1 * even - 1 <= s <= 1.9 * even + 1 for s in shares)
    assert parts == 1 or len(set(shares)) > 1
