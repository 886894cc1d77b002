"""`tokenboard replay` puts exactly the scenario's tokens on the usage topic."""

from __future__ import annotations

from collections import defaultdict

from aggregations.scenario import Scenario
from aggregations.weeks import week_id
from streams.dev.replay import produce_scenario
from streams.settings import Settings
from streams.topics import ensure_topics
from tests.integration.kafka_read import read_usage_events


async def test_replayed_events_sum_to_every_cell(
    settings: Settings, seed_scenario: Scenario
) -> None:
    """Read back from the broker, per (week, model) sums equal the seed table exactly."""
    await ensure_topics(settings)
    produced = await produce_scenario(settings, seed_scenario, 3, show=False)
    events = await read_usage_events(settings)
    assert len(events) == produced == seed_scenario.event_count(3)
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for event in events.values():
        sums[(week_id(event.ts_ms), event.model)] += event.tokens
    assert dict(sums) == seed_scenario.cell_totals()
