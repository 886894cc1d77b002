"""Rejected events are visible (issue 17, item 4): the gateway refuses an event it can already
tell is too old, and what the workers reject is shown once each, with its reason, by
``tokenboard dead-letters`` and ``GET /v1/dead-letters``."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from aggregations.events import UsageEvent
from streams.http.api import build_api_app
from streams.sdk.dead_letters import DeadLetterPage, read_dead_letters
from streams.sdk.producer import UsageProducer
from streams.settings import Settings
from streams.store.keys import RedisKeys
from streams.topics import ensure_topics
from tests.integration.kafka_read import read_topic, read_usage_events
from tests.integration.private_stack import wait_until
from tests.integration.processes import WorkerProcess, free_port
from tests.integration.test_ingest import JSON, gateway
from tests.integration.test_read_side import Conformance, cli, get_json, run_cli

NOW_MS = time.time_ns() // 1_000_000
WEEK_MS = 7 * 86_400_000
MODEL = "openai/gpt-5.1"


def event(event_id: str, ts_ms: int) -> dict[str, object]:
    """A valid event as JSON, but for its time."""
    return {"event_id": event_id, "ts": ts_ms, "model": MODEL, "prompt_tokens": 120,
            "completion_tokens": 30}  # fmt: skip


def home(event_id: str, partitions: int) -> int:
    """The usage partition of a record keyed by ``event_id`` (Kafka's default partitioner)."""
    return (murmur2(event_id.encode()) & 0x7FFFFFFF) % partitions


async def test_dead_letters_are_shown_once_and_too_old_refused_at_the_gateway(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    redis_client: aioredis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A broken record and an event 30 weeks older than its partition's event time reach the
    dead-letter topic; a replayed copy of one is left out. The CLI (table and JSON lines) and
    the API list each once with its reason, detail and source. Once the workers wrote the
    pipeline's event time, the gateway refuses the same too-old event in a batch (207, with
    the reason per event) and still accepts the valid events around it."""
    await ensure_topics(settings)
    start_worker("w1")
    old_id = "too-old-1"
    partition = home(old_id, settings.partitions)
    recent_id = next(
        f"recent-{i}" for i in itertools.count() if home(f"recent-{i}", settings.partitions)
        == partition
    )  # fmt: skip
    async with UsageProducer(settings) as producer:
        # The recent event first: stage 1 counts retention back from its partition's event time.
        await producer.send_and_wait(UsageEvent(recent_id, NOW_MS - 60_000, MODEL, 100, 10))
        await producer.acknowledged(
            [
                await producer.send_raw(old_id, orjson.dumps(event(old_id, NOW_MS - 30 * WEEK_MS))),
                await producer.send_raw("broken-1", b'{"event_id": "broken-1", "ts": '),
            ]
        )

    async def both() -> DeadLetterPage | None:
        page = await read_dead_letters(settings)
        return page if page.matched == 2 else None

    first = await wait_until(both, timeout_s=60, what="two dead letters")
    assert sorted(letter.reason for letter in first.letters) == ["bad_json", "too_old"]
    # A rebalance replaying the block would send a dead letter again, with the same source.
    copy = next(
        r for r in await read_topic(settings, settings.dead_letter_topic) if r.key == b"too-old-1"
    )
    kafka = AIOKafkaProducer(**settings.kafka_client_options(), acks="all")
    await kafka.start()
    try:
        await kafka.send_and_wait(
            settings.dead_letter_topic, copy.value, key=copy.key, partition=copy.partition,
            headers=list(copy.headers),
        )  # fmt: skip
    finally:
        await kafka.stop()
    assert len(await read_topic(settings, settings.dead_letter_topic)) == 3

    # CLI --------------------------------------------------------------------------------
    lines = (await run_cli(capsys, settings, "dead-letters", "--json")).splitlines()
    letters = {d["reason"]: d for d in map(json.loads, lines)}
    assert len(lines) == 2 and set(letters) == {"bad_json", "too_old"}
    too_old = letters["too_old"]
    assert too_old["key"] == old_id and too_old["source"].startswith(
        f"{settings.usage_topic}/{partition}/"
    )
    assert "before the pipeline's event time" in too_old["detail"]
    assert orjson.loads(too_old["value"])["event_id"] == old_id
    assert letters["bad_json"]["value"] == '{"event_id": "broken-1", "ts": '
    table = await run_cli(capsys, settings, "dead-letters")
    head, blank, header, *rows = table.splitlines()
    assert blank == ""
    assert head == (
        f"{settings.dead_letter_topic} · 2 of 2 dead letters, newest last"
        " · 1 repeated copy left out"
    )
    assert header.split() == ["time", "reason", "source", "detail", "value"]
    assert sorted(row.split()[1] for row in rows) == ["bad_json", "too_old"]
    assert any(too_old["source"] in row and "too-old-1" in row for row in rows)
    only = await run_cli(capsys, settings, "dead-letters", "--reason", "too_old", "--since", "1h")
    assert len(only.splitlines()) == 4 and "bad_json" not in only
    future = await run_cli(capsys, settings, "dead-letters", "--since", "2099-01-01", "--json")
    assert future == ""
    code, _, err = await cli(capsys, settings, "dead-letters", "--reason", "nope")
    assert code == 2 and "unknown reason 'nope'" in err and "too_old" in err
    code, _, err = await cli(capsys, settings, "dead-letters", "--since", "yesterday")
    assert code == 2 and "since 'yesterday' is neither" in err

    # API --------------------------------------------------------------------------------
    async with TestClient(TestServer(build_api_app(settings))) as client:
        spec = Conformance(await (await client.get("/openapi.json")).json())
        path = "/v1/dead-letters"
        body = await get_json(client, spec, path, path)
        assert (body["matched"], body["duplicates"], body["complete"]) == (2, 1, True)
        assert {d["reason"]: d for d in body["dead_letters"]} == letters
        newest = await get_json(client, spec, path, f"{path}?limit=1")
        assert newest["dead_letters"] == [body["dead_letters"][-1]]
        old = await get_json(client, spec, path, f"{path}?reason=too_old&since=2h")
        assert [d["source"] for d in old["dead_letters"]] == [too_old["source"]]
        assert old["reason"] == "too_old" and old["since"].endswith("Z")
        for bad in ("since=yesterday", "reason=nope", "limit=0"):
            await get_json(client, spec, path, f"{path}?{bad}", 400)

    # The gateway ----------------------------------------------------------------------------
    async def watermark() -> str | None:
        value: str | None = await redis_client.get(RedisKeys(settings.redis_prefix).watermark)
        return value

    await wait_until(watermark, timeout_s=30, what="the pipeline's event time in Redis")
    batch = [event("gw-1", NOW_MS - 1000), event("gw-old", NOW_MS - 30 * WEEK_MS),
             event("gw-2", NOW_MS - 2000)]  # fmt: skip
    async with gateway(settings) as client:
        response = await client.post("/v1/events", data=orjson.dumps(batch), headers=JSON)
        answer = await response.json()
        assert response.status == 207, answer
        assert (answer["accepted"], answer["rejected"]) == (2, 1)
        assert [r["status"] for r in answer["results"]] == ["accepted", "rejected", "accepted"]
        refused = answer["results"][1]
        assert (refused["index"], refused["reason"], refused["field"]) == (1, "too_old", "ts")
        assert "its week is past retention" in refused["detail"]
        alone = await client.post("/v1/events", data=orjson.dumps(batch[1]), headers=JSON)
        assert alone.status == 400
        assert [r["reason"] for r in (await alone.json())["results"]] == ["too_old"]
    usage = {r.key for r in await read_topic(settings, settings.usage_topic)}
    assert {b"gw-1", b"gw-2"} <= usage and b"gw-old" not in usage


async def test_the_gateway_leaves_too_old_to_the_workers_when_it_cannot_know(
    settings: Settings,
) -> None:
    """Without the pipeline's event time (no worker wrote it yet, or Redis is unreachable)
    the gateway does not refuse an old event, and does not wait for Redis either: stage 1
    still decides."""
    await ensure_topics(settings)
    unreachable = settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    for index, each in enumerate((settings, unreachable)):
        old = event(f"old-{index}", NOW_MS - 30 * WEEK_MS)
        async with gateway(each) as client:
            started = time.monotonic()
            response = await client.post("/v1/events", data=orjson.dumps(old), headers=JSON)
            assert response.status == 200, await response.json()
            assert time.monotonic() - started < 5
    assert {"old-0", "old-1"} <= set(await read_usage_events(settings))
