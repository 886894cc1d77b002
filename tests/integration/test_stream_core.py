"""The stream core against the real broker and Redis: exact totals, faults, bad input."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import orjson
import redis.asyncio as aioredis

from aggregations.events import UsageEvent
from aggregations.scenario import Scenario, replay_events
from aggregations.weeks import week_end_ms, week_start_ms
from streams.dev.replay import produce_scenario, wait_for_pipeline
from streams.sdk.producer import UsageProducer
from streams.settings import Settings
from streams.store.keys import RedisKeys
from streams.store.report import weekly_report
from streams.store.state import week_to_date_tokens
from streams.topics import ensure_topics
from tests.integration.kafka_read import read_topic
from tests.integration.processes import WorkerProcess

StartWorker = Callable[..., WorkerProcess]


async def test_seed_replay_gives_exact_tables_and_report(
    settings: Settings,
    start_worker: StartWorker,
    seed_scenario: Scenario,
    redis_client: aioredis.Redis,
) -> None:
    """Replaying the seed scenario reproduces every cell and every fact of the seed week."""
    await ensure_topics(settings)
    start_worker("w1")
    produced = await produce_scenario(settings, seed_scenario, 20, show=False)
    assert produced == seed_scenario.event_count(20)
    await wait_for_pipeline(settings, seed_scenario, timeout_s=120, show=False)

    report = await weekly_report(
        redis_client, RedisKeys(settings.redis_prefix), "2026-W47", settings.top_n
    )
    assert report["total"]["tokens"] == 28_900_000_000_000
    assert abs(report["total"]["wow_pct"] - 7.40) < 0.01
    assert report["total"]["growth_streak"] == 5
    countries = {c["country"]: c for c in report["countries"]}
    assert countries["CN"]["tokens"] == 9_223_000_000_000
    assert abs(countries["CN"]["wow_pct"] - 19.78) < 0.01
    assert countries["US"]["tokens"] == 4_930_000_000_000
    assert abs(countries["US"]["wow_pct"] - 16.00) < 0.01
    assert report["leader"] == {"country": "CN", "streak": 4}
    first, second = report["models"][:2]
    assert first["model"] == "deepseek/deepseek-v4-flash"
    assert first["tokens"] == 3_430_000_000_000
    assert abs(first["wow_pct"] - 66.02) < 0.01
    assert first["prev_rank"] == 2
    assert (second["model"], second["tokens"], second["prev_rank"]) == (
        "tencent/hy3-preview",
        3_070_000_000_000,
        1,
    )
    assert abs(second["wow_pct"] - 15.98) < 0.01
    dropped = {d["model"]: d for d in report["dropped"]}
    assert dropped["moonshotai/kimi-k2.6"]["prev_rank"] == 6

    # Daily buckets answer week-to-date: on the week's Sunday it is the whole week.
    client = aioredis.from_url(settings.redis_url)
    try:
        keys = RedisKeys(settings.redis_prefix)
        wtd = await week_to_date_tokens(client, keys, "total", "all", "2026-11-22")
        model_wtd = await week_to_date_tokens(
            client, keys, "model", "deepseek/deepseek-v4-flash", "2026-11-22"
        )
    finally:
        await client.aclose()
    assert (wtd["tokens"], wtd["last_week_tokens"]) == (28_900_000_000_000, 26_908_000_000_000)
    assert (model_wtd["tokens"], model_wtd["last_week_tokens"]) == (
        3_430_000_000_000,
        2_066_000_000_000,
    )


async def test_sigkill_during_replay_keeps_totals_exact(
    settings: Settings, start_worker: StartWorker, seed_scenario: Scenario
) -> None:
    """Two workers, one SIGKILLed twice mid-replay and restarted: every total still exact."""
    settings = settings.replace(block_size=1500)
    await ensure_topics(settings)
    w1 = start_worker("w1", block_size=1500)
    start_worker("w2", block_size=1500)
    events = list(replay_events(seed_scenario, 60))
    chunks = [events[i : i + 2000] for i in range(0, len(events), 2000)]
    kills_at = {len(chunks) // 4, len(chunks) // 2}
    async with UsageProducer(settings) as producer:
        for i, chunk in enumerate(chunks):
            await producer.send_many(chunk)
            if i in kills_at:
                await asyncio.sleep(random.uniform(0.2, 1.0))
                w1.kill()
                w1.start()
            await asyncio.sleep(0.3)
    w1.wait_ready(timeout_s=90)
    await wait_for_pipeline(settings, seed_scenario, timeout_s=180, show=False)


async def test_duplicates_bad_events_and_late_events(
    settings: Settings, start_worker: StartWorker, redis_client: aioredis.Redis
) -> None:
    """Duplicates count once, bad events reach the dead-letter topic, late ones are flagged."""
    await ensure_topics(settings)
    start_worker("w1")
    keys = RedisKeys(settings.redis_prefix)
    week = "2026-W46"
    start = week_start_ms(week)

    def event(i: int, ts: int, tokens: int = 1000) -> UsageEvent:
        return UsageEvent(
            event_id=f"e{i}", ts_ms=ts, model="openai/gpt-5.1",
            prompt_tokens=tokens, completion_tokens=tokens // 2,
        )  # fmt: skip

    good = [event(i, start + i * 60_000) for i in range(50)]
    bad = [
        b"{not json",
        orjson.dumps({"event_id": "x1", "ts": start, "prompt_tokens": 1, "completion_tokens": 1}),
        orjson.dumps(
            {
                "event_id": "x2",
                "ts": start,
                "model": "m",
                "prompt_tokens": -5,
                "completion_tokens": 1,
            }
        ),
        b"\xff\xfe bad utf-8",
    ]
    async with UsageProducer(settings) as producer:
        futures = []
        for i, e in enumerate(good):
            futures.append(await producer.send(e))
            if i % 10 == 0:
                futures.append(await producer.send(e))  # a retry duplicate
            if i % 13 == 0:
                futures.append(await producer.send_raw(f"bad{i}", bad[(i // 13) % len(bad)]))
        await asyncio.gather(*futures)
        # Move the watermark past the week's end plus grace, then a late event for the week.
        future_ts = week_end_ms(week) + settings.grace_seconds * 1000 + 60_000
        await producer.send_and_wait(event(1000, future_ts))
        await producer.send_and_wait(event(1001, start + 3_600_000, tokens=10))

    expected = sum(e.prompt_tokens + e.completion_tokens for e in good) + 15
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        total = await redis_client.hgetall(keys.total(week))
        if int(total.get("tokens", 0)) == expected and int(total.get("late", 0)) >= 1:
            break
        await asyncio.sleep(0.3)
    assert int(total["tokens"]) == expected
    assert int(total["calls"]) == 51
    assert int(total["late"]) == 1

    dead = await read_topic(settings, settings.dead_letter_topic)
    assert len(dead) >= 4
    reasons = {dict(r.headers)["reason"].decode() for r in dead}
    assert {"bad_json", "missing_field", "negative_count", "bad_utf8"} <= reasons


async def test_worker_restart_publishes_no_duplicate_changes(
    settings: Settings, start_worker: StartWorker, seed_scenario: Scenario
) -> None:
    """Ranking changes and alerts carry unique ids and a restart publishes nothing again."""
    await ensure_topics(settings)
    w1 = start_worker("w1", idle_close_seconds=2)
    await produce_scenario(settings, seed_scenario, 5, show=False)
    await wait_for_pipeline(settings, seed_scenario, timeout_s=120, show=False)
    # The ranker closes W47 once idle and settled; count only after every week is closed.
    keys = RedisKeys(settings.redis_prefix)
    client = aioredis.from_url(settings.redis_url)
    try:
        deadline = time.monotonic() + 60
        while await client.zcard(keys.closed_weeks) < len(seed_scenario.weeks):
            assert time.monotonic() < deadline, "the ranker did not close every week"
            await asyncio.sleep(0.5)
    finally:
        await client.aclose()
    await asyncio.sleep(2)  # publications of the last close are acknowledged
    changes = await read_topic(settings, settings.rankings_topic)
    alerts = await read_topic(settings, settings.alerts_topic)
    assert changes and alerts
    ids = [orjson.loads(r.value)["id"] for r in changes + alerts]
    assert len(ids) == len(set(ids))
    kinds = {orjson.loads(r.value)["kind"] for r in alerts}
    assert "growth_streak" in kinds

    w1.kill()
    start_worker("w1b", idle_close_seconds=2)
    await asyncio.sleep(8)
    again = await read_topic(settings, settings.rankings_topic)
    again_alerts = await read_topic(settings, settings.alerts_topic)
    assert len(again) == len(changes)
    assert len(again_alerts) == len(alerts)
