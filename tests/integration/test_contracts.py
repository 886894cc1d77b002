"""One contract across the read side (issue 17, item 10).

* JSON names a member after its dimension everywhere, as the weekly report does: ``model``,
  ``country`` or ``vendor`` next to the display ``name``, and the event's ``prompt_tokens`` /
  ``completion_tokens`` (``top --json`` said ``member``, ``prompt``, ``completion``).
* In the live feed (``/v1/events/stream``, ``tokenboard watch``) ``name`` is always a display
  name; the id stays in the ranking change's ``member`` or the alert's ``subject`` (it was
  the id for alerts and the display name for ranking changes).
* Vendors are found whatever their case, as countries are.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer
from jsonschema import Draft202012Validator

from aggregations.events import UsageEvent
from streams.http.api import build_api_app
from streams.sdk.producer import UsageProducer
from streams.settings import Settings
from streams.store.keys import RedisKeys
from streams.topics import ensure_topics
from tests.integration.private_stack import Expected, wait_for_totals
from tests.integration.processes import WorkerProcess
from tests.integration.test_read_side import (
    SPEC_URI,
    Conformance,
    cli,
    first_sse_messages,
    get_json,
    run_cli,
)

NOW_MS = time.time_ns() // 1_000_000
DEEPSEEK = "deepseek/deepseek-v4-flash"
MODELS = [DEEPSEEK, "openai/gpt-5.1", "mistralai/mistral-medium-3.2", "openai/gpt-5.1"]


async def test_boards_histories_and_the_report_name_members_alike(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``top --json`` rows carry the report's model fields with the same values, country and
    vendor boards name their member ``country`` and ``vendor``, the API answers the same
    dicts, and ``openai`` finds the vendor ``OpenAI`` in the CLI and the API."""
    await ensure_topics(settings)
    worker = start_worker("w1")
    events = [
        UsageEvent(f"contract-{i}", NOW_MS - 3_600_000 - i, model, 1000 * (i + 1), 100 + i)
        for i, model in enumerate(MODELS)
    ]
    async with UsageProducer(settings) as producer:
        await producer.send_many(events)
    await wait_for_totals(settings, Expected.of(events), 60, [worker])
    openai_tokens = sum(e.tokens for e in events if e.model.startswith("openai/"))

    top = json.loads(await run_cli(capsys, settings, "top", "--json"))
    report = json.loads(await run_cli(capsys, settings, "report", "--week", "current", "--json"))
    assert [row["model"] for row in top["rows"]] == [m["model"] for m in report["models"]]
    for row, model in zip(top["rows"], report["models"], strict=True):
        assert {key: row[key] for key in model} == model
        assert not {"member", "prompt", "completion"} & set(row)
        assert row["prompt_tokens"] + row["completion_tokens"] == row["tokens"]
    countries = json.loads(await run_cli(capsys, settings, "top", "--by", "country", "--json"))
    assert [(r["country"], r["tokens"]) for r in countries["rows"]] == [
        (c["country"], c["tokens"]) for c in report["countries"]
    ]
    assert countries["rows"][0]["name"] == "United States"
    vendors = json.loads(await run_cli(capsys, settings, "top", "--by", "vendor", "--json"))
    assert {(r["vendor"], r["name"]) for r in vendors["rows"]} >= {("OpenAI", "OpenAI")}

    history = json.loads(await run_cli(capsys, settings, "history", "--vendor", "openai", "--json"))
    assert (history["vendor"], history["weeks"][-1]["tokens"]) == ("OpenAI", openai_tokens)
    table = await run_cli(capsys, settings, "history", "--vendor", "OPENAI")
    assert table.startswith("OpenAI (OpenAI)")
    model = json.loads(await run_cli(capsys, settings, "history", "--model", DEEPSEEK, "--json"))
    assert (model["model"], model["name"], model["vendor"]) == (
        DEEPSEEK, "DeepSeek-V4-Flash", "DeepSeek",
    )  # fmt: skip
    code, _, err = await cli(capsys, settings, "history", "--vendor", "nobody")
    assert code == 1 and "no vendor 'nobody'" in err

    async with TestClient(TestServer(build_api_app(settings))) as client:
        spec = Conformance(await (await client.get("/openapi.json")).json())
        board = await get_json(client, spec, "/v1/leaderboard/{dimension}", "/v1/leaderboard/model")
        assert board == top
        template = "/v1/history/vendor/{name}"
        for spelling in ("openai", "OpenAI", "OPENAI"):
            found = await get_json(client, spec, template, f"/v1/history/vendor/{spelling}")
            assert found == history
        await get_json(client, spec, template, "/v1/history/vendor/nobody", 404)
        wtd = await get_json(
            client, spec, "/v1/week-to-date/{dimension}", "/v1/week-to-date/vendor?member=openai"
        )
        assert (wtd["vendor"], wtd["tokens"]) == ("OpenAI", openai_tokens)
        total = await get_json(
            client, spec, "/v1/week-to-date/{dimension}", "/v1/week-to-date/total"
        )
        assert total["tokens"] == sum(e.tokens for e in events)
        assert not {"model", "country", "vendor", "member"} & set(total)


def change(event_id: str, dimension: str, member: str) -> dict[str, Any]:
    """A live ranking change of ``member`` to #1 in the seed week."""
    return {"id": event_id, "type": "ranking_change", "kind": "moved_up", "dimension": dimension,
            "week": "2026-W47", "phase": "live", "member": member, "old_rank": 2, "new_rank": 1,
            "tokens": 5_000}  # fmt: skip


def alert(event_id: str, kind: str, subject: str) -> dict[str, Any]:
    """An alert of ``kind`` about ``subject`` in the seed week."""
    return {"id": event_id, "type": "alert", "kind": kind, "week": "2026-W47",
            "subject": subject, "message": f"{kind} of {subject}"}  # fmt: skip


async def test_the_live_feed_names_every_event_by_its_display_name(
    settings: Settings, redis_client: aioredis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ranking changes and alerts about a model, a country and the global total: ``watch
    --json`` and the API's stream give each the display name (the model's recorded name,
    ``China``, ``Global``) in ``name`` and keep the id in ``member`` / ``subject``."""
    await ensure_topics(settings)
    keys = RedisKeys(settings.redis_prefix)
    await redis_client.hset(keys.member("model", "2026-W47", DEEPSEEK), "name", "DeepSeek-V4-Flash")
    published = {
        "rc-model": (change("rc-model", "model", DEEPSEEK), "DeepSeek-V4-Flash"),
        "rc-country": (change("rc-country", "country", "CN"), "China"),
        "rc-vendor": (change("rc-vendor", "vendor", "DeepSeek"), "DeepSeek"),
        "al-model": (alert("al-model", "surge", DEEPSEEK), "DeepSeek-V4-Flash"),
        "al-country": (alert("al-country", "leader_change", "CN"), "China"),
        "al-total": (alert("al-total", "growth_streak", "total"), "Global"),
    }
    producer = AIOKafkaProducer(**settings.kafka_client_options(), acks="all")
    await producer.start()
    try:
        for event, _ in published.values():
            topic = settings.alerts_topic if event["type"] == "alert" else settings.rankings_topic
            await producer.send_and_wait(topic, orjson.dumps(event), partition=0)
    finally:
        await producer.stop()
    count = str(len(published))

    def check(payloads: list[dict[str, Any]]) -> None:
        assert sorted(p["id"] for p in payloads) == sorted(published)
        for payload in payloads:
            event, name = published[payload["id"]]
            assert payload["name"] == name, payload
            assert {k: payload[k] for k in event} == event  # the ids stay where they were

    lines = await run_cli(capsys, settings, "watch", "--from-beginning", "--limit", count, "--json")
    check([orjson.loads(line) for line in lines.splitlines()])
    text = await run_cli(capsys, settings, "watch", "--from-beginning", "--limit", count)
    assert "2026-W47 country  ↑ China moved up to #1 (was #2)  5K" in text.splitlines()

    async with TestClient(TestServer(build_api_app(settings))) as client:
        spec = Conformance(await (await client.get("/openapi.json")).json())
        ready, *messages = await first_sse_messages(
            client, f"/v1/events/stream?backlog={count}", len(published) + 1
        )
        assert ready.startswith("event: ready")
        payloads = [orjson.loads(m.removeprefix("data: ")) for m in messages]
        check(payloads)
        for payload in payloads:
            kind = "Alert" if payload["type"] == "alert" else "RankingChange"
            Draft202012Validator(
                {"$ref": f"{SPEC_URI}#/components/schemas/{kind}"}, registry=spec.registry
            ).validate(payload)
