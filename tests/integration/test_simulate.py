"""The traffic simulator against the real broker."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from streams.dev.simulate import simulate
from streams.settings import Settings
from tests.integration.kafka_read import read_usage_events


async def test_simulate_produces_the_requested_rate_of_valid_events(settings: Settings) -> None:
    """Two seconds at 500/s: about 1000 events on the topic, all valid, over several models."""
    sent = await simulate(settings, rate=500, duration=2, models=20, seed=5, show=False)
    # Never more than rate x duration; fewer only if the machine could not keep up.
    assert 500 < sent <= 1000
    events = await read_usage_events(settings)
    assert len(events) == sent
    per_model = Counter(e.model for e in events.values())
    assert 1 < len(per_model) <= 20
    assert per_model.most_common(1)[0][1] > sent / 20
    assert all(e.prompt_tokens > 0 and e.completion_tokens > 0 for e in events.values())


async def test_two_runs_with_the_same_seed_never_share_event_ids(settings: Settings) -> None:
    """Each run draws its own id prefix, so a rerun is not dropped as duplicates."""
    first = await simulate(settings, rate=200, duration=0.5, seed=9, show=False)
    second = await simulate(settings, rate=200, duration=0.5, seed=9, show=False)
    assert len(await read_usage_events(settings)) == first + second


async def test_a_stop_event_ends_an_open_ended_run(settings: Settings) -> None:
    """duration 0 runs until the stop event is set, then returns what was acknowledged."""
    stop = asyncio.Event()
    run = asyncio.create_task(simulate(settings, rate=300, duration=0, show=False, stop=stop))
    while not run.done() and not await read_usage_events(settings):
        await asyncio.sleep(0.1)
    stop.set()
    sent = await asyncio.wait_for(run, 30)
    assert sent > 0
    assert len(await read_usage_events(settings)) == sent


async def test_open_ended_run_needs_a_stop_event(settings: Settings) -> None:
    """duration 0 without a way to stop is refused up front."""
    with pytest.raises(ValueError, match="stop event"):
        await simulate(settings, rate=10, duration=0, show=False)
