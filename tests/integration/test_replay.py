"""`tokenboard replay` puts exactly the scenario's tokens on the usage topic."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

import pytest

from aggregations.events import UsageEvent
from aggregations.scenario import Scenario
from aggregations.weeks import week_id, week_start_ms
from streams.cli.main import main
from streams.dev.replay import produce_scenario, wait_for_pipeline
from streams.sdk.producer import UsageProducer
from streams.settings import Settings
from streams.store.client import connect
from streams.store.keys import RedisKeys
from streams.topics import ensure_topics
from tests.integration.conftest import SEED_PATH
from tests.integration.kafka_read import read_usage_events
from tests.integration.private_stack import wait_until


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


async def test_replay_again_after_other_events_in_its_weeks(
    settings: Settings,
    seed_scenario: Scenario,
    start_worker: Callable[..., object],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """After the seed replay and one more event in its week (the README's curl examples),
    `tokenboard replay` of the seed again finishes at once: it waited for the week to equal
    the scenario before, and timed out ("28.9T of 28.9T")."""
    await ensure_topics(settings)
    start_worker("w1")
    await produce_scenario(settings, seed_scenario, 2, show=False)
    await wait_for_pipeline(settings, seed_scenario, timeout_s=120, show=False)
    week = "2026-W47"
    extra = UsageEvent(
        "readme-curl-a1", week_start_ms(week) + 3_600_000, "openai/gpt-5.1", 1200, 1280
    )
    async with UsageProducer(settings) as producer:
        await producer.send_and_wait(extra)
    keys = RedisKeys(settings.redis_prefix)
    target = seed_scenario.week_totals()[week] + extra.tokens
    reader = connect(settings)
    try:

        async def counted() -> bool:
            return int(await reader.hget(keys.total(week), "tokens") or 0) == target

        await wait_until(counted, timeout_s=60, what="the extra event counted")
    finally:
        await reader.aclose()
    prefixes = ["--topic-prefix", settings.topic_prefix, "--redis-prefix", settings.redis_prefix]
    argv = ["replay", str(SEED_PATH), "--events", "2", "--timeout", "60", *prefixes]
    code = await asyncio.to_thread(main, argv)
    assert code == 0, capsys.readouterr().err
    assert "pipeline reflects every week and model total" in capsys.readouterr().out
