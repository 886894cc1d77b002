"""The app dimension against the real stack: events with and without an app flow through a
real worker into exact app boards, the ranker ranks apps (never the events without one) and
publishes their ranking changes, and the CLI and the read API serve app boards and exports
of every dimension in CSV, JSON and Parquet."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pyarrow.parquet as pq
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from aggregations.events import UsageEvent
from aggregations.export import columns_for
from aggregations.totals import NO_APP
from aggregations.weeks import days_of_week, previous_week, week_id, week_start_ms
from streams.http.api import build_api_app
from streams.sdk.producer import UsageProducer
from streams.settings import Settings
from streams.store.keys import RedisKeys
from streams.topics import ensure_topics
from tests.integration.kafka_read import read_topic
from tests.integration.private_stack import Expected, wait_for_totals, wait_until
from tests.integration.processes import WorkerProcess
from tests.integration.test_read_side import (  # noqa: F401 - readonly_settings is a fixture
    Client,
    Conformance,
    get_json,
    readonly_settings,
    run_cli,
)

StartWorker = Callable[..., WorkerProcess]
NOW_MS = time.time_ns() // 1_000_000
WEEK = week_id(NOW_MS)
PREV = previous_week(WEEK)
MODEL = "deepseek/deepseek-v4-flash"
#: A real app whose name is the no-app member's display name: it is its own member.
LOOKALIKE = "(no app)"


def events(tag: str, week: str, plan: list[tuple[str | None, int, int]]) -> list[UsageEvent]:
    """For each (app, count, tokens) ``count`` events of ``tokens`` tokens in ``week``'s
    first hour (app ``""`` and None both mean no app)."""
    start = week_start_ms(week)
    out: list[UsageEvent] = []
    for app, count, tokens in plan:
        for _ in range(count):
            n = len(out)
            prompt = tokens * 3 // 4
            out.append(
                UsageEvent(
                    event_id=f"{tag}-{n}", ts_ms=start + 60_000 + n * 1000, model=MODEL,
                    prompt_tokens=prompt, completion_tokens=tokens - prompt, app=app,
                )
            )  # fmt: skip
    return out


async def app_board(client: aioredis.Redis, keys: RedisKeys, week: str) -> dict[str, int]:
    """The week's app sorted set as member -> tokens."""
    rows = await client.zrange(keys.leaderboard("app", week), 0, -1, withscores=True)
    return {str(m): int(s) for m, s in rows}


async def app_changes(settings: Settings) -> list[dict[str, Any]]:
    """Every ranking change of the app dimension published so far."""
    records = await read_topic(settings, settings.rankings_topic)
    changes = [orjson.loads(r.value) for r in records if r.value is not None]
    return [c for c in changes if c["dimension"] == "app"]


async def test_apps_are_counted_ranked_published_served_and_exported(
    settings: Settings,
    readonly_settings: Settings,  # noqa: F811 - the fixture imported above
    start_worker: StartWorker,
    redis_client: aioredis.Redis,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Apps count exactly, next to the unranked member of events without one; ranks, changes
    (entered, new #1, dropped out of the top 2), boards, histories and exports follow."""
    settings = settings.replace(top_n=2)
    readonly_settings = readonly_settings.replace(top_n=2)
    keys = RedisKeys(settings.redis_prefix)
    await ensure_topics(settings)
    worker = start_worker("w1", top_n=2)
    before = events("p", PREV, [("support-bot", 5, 1000), ("coder", 3, 1000), (None, 4, 700)])
    now = events(
        "c",
        WEEK,
        [
            ("support-bot", 6, 1000), ("coder", 4, 1000), (LOOKALIKE, 1, 500),
            ("a:b", 2, 100), (None, 6, 1000), ("", 4, 1000),
        ],
    )  # fmt: skip
    async with UsageProducer(settings) as producer:
        await producer.send_many(before + now)
        await producer.send_many(now[:5])  # resent: counted once
    await wait_for_totals(settings, Expected.of(before + now), 90, [worker])

    # Redis: the named apps on the board, the others in the no-app hash only ------------------
    assert await app_board(redis_client, keys, WEEK) == {
        "support-bot": 6000, "coder": 4000, LOOKALIKE: 500, "a:b": 200,
    }  # fmt: skip
    no_app = await redis_client.hgetall(keys.member("app", WEEK, NO_APP))
    # The model has no price: the tokens are unpriced, their cost unknown (not 0).
    assert {k: int(v) for k, v in no_app.items()} == {
        "tokens": 10_000, "prompt": 7500, "completion": 2500, "calls": 10, "late": 0,
        "cost_micro_usd": 0, "unpriced_tokens": 10_000,
    }  # fmt: skip
    total = int(await redis_client.hget(keys.total(WEEK), "tokens"))
    assert total == 10_000 + 6000 + 4000 + 500 + 200
    for day in days_of_week(WEEK):
        assert await redis_client.zscore(keys.daily("app", day), NO_APP) is None
    assert await redis_client.zscore(keys.daily("app", days_of_week(WEEK)[0]), "coder") == 4000

    # The ranker: apps ranked against last week, the no-app member never, data complete -----
    async def ranked() -> bool:
        fields = await redis_client.hmget(
            keys.member("app", WEEK, "support-bot"), ["rank", "prev_rank"]
        )
        fingerprint = await redis_client.hget(keys.ranked, WEEK)
        return fields == ["1", "1"] and bool(fingerprint)

    await wait_until(ranked, timeout_s=60, what="support-bot ranked #1 on complete data")
    assert await redis_client.hmget(keys.member("app", WEEK, LOOKALIKE), ["rank", "prev_rank"]) == [
        "3", "",
    ]  # fmt: skip
    assert await redis_client.hget(keys.member("app", WEEK, NO_APP), "rank") is None

    async def first_changes() -> list[dict[str, Any]] | None:
        changes = [c for c in await app_changes(settings) if c["week"] == WEEK]
        kinds = {(c["kind"], c["member"]) for c in changes}
        wanted = {("new_leader", "support-bot"), ("entered", "coder")}
        return changes if wanted <= kinds else None

    changes = await wait_until(first_changes, timeout_s=60, what="the app top 2 published")
    assert all(c["member"] != NO_APP and c["phase"] == "live" for c in changes)

    # A third app overtakes both: new #1, and coder leaves the top 2 -------------------------
    overtake = events("o", WEEK, [("a:b", 10, 1000)])
    async with UsageProducer(settings) as producer:
        await producer.send_many(overtake)
    await wait_for_totals(settings, Expected.of(before + now + overtake), 90, [worker])

    async def overtaken() -> set[tuple[str, str]] | None:
        kinds = {(c["kind"], c["member"]) for c in await app_changes(settings) if c["week"] == WEEK}
        wanted = {("new_leader", "a:b"), ("dropped", "coder"), ("moved_down", "support-bot")}
        return kinds if wanted <= kinds else None

    await wait_until(overtaken, timeout_s=60, what="a:b the new #1 and coder out of the top 2")
    ids = [c["id"] for c in await app_changes(settings)]
    assert len(ids) == len(set(ids))

    # CLI ---------------------------------------------------------------------------------------
    table = await run_cli(capsys, readonly_settings, "top", "--dim", "app")
    head, _, header, *rows = table.splitlines()
    assert head.startswith(f"{WEEK} · top 4 apps of 4 · total ")
    assert head.endswith("· (no app) 10K, not ranked")
    assert header.split()[:3] == ["#", "move", "app"]
    assert [r.split()[2] for r in rows] == ["a:b", "support-bot", "coder", "(no"]
    top = json.loads(await run_cli(capsys, readonly_settings, "top", "--by", "app", "--json"))
    assert [(r["app"], r["tokens"]) for r in top["rows"]] == [
        ("a:b", 10_200), ("support-bot", 6000), ("coder", 4000), (LOOKALIKE, 500),
    ]  # fmt: skip
    assert top["unranked_tokens"] == 10_000 and top["total_tokens"] == total + 10_000
    history = json.loads(
        await run_cli(capsys, readonly_settings, "history", "--app", "support-bot", "--json")
    )
    assert [(w["week"], w["tokens"], w["rank"]) for w in history["weeks"]] == [
        (PREV, 5000, 1), (WEEK, 6000, 2),
    ]  # fmt: skip
    csv_out = await run_cli(capsys, readonly_settings, "export", "--dim", "app", "--week", WEEK)
    cli_csv = list(csv.DictReader(io.StringIO(csv_out, newline="")))
    assert [(r["rank"], r["app"], r["tokens"]) for r in cli_csv] == [
        ("1", "a:b", "10200"), ("2", "support-bot", "6000"), ("3", "coder", "4000"),
        ("4", LOOKALIKE, "500"),
    ]  # fmt: skip
    assert cli_csv[1]["prev_rank"] == "1" and cli_csv[0]["prev_rank"] == ""
    outputs = {}
    for fmt in ("json", "parquet"):
        path = tmp_path / f"apps.{fmt}"
        argv = ["export", "--dim", "app", "--format", fmt, "--output", str(path)]
        assert await run_cli(capsys, readonly_settings, *argv) == ""
        outputs[fmt] = path.read_bytes()
    cli_json = orjson.loads(outputs["json"])
    assert (cli_json["week"], cli_json["unranked_tokens"]) == (WEEK, 10_000)
    assert pq.read_table(io.BytesIO(outputs["parquet"])).to_pylist() == cli_json["rows"]

    # API ---------------------------------------------------------------------------------------
    async with TestClient(TestServer(build_api_app(readonly_settings))) as client:
        spec = Conformance(await (await client.get("/openapi.json")).json())
        board = await get_json(client, spec, "/v1/leaderboard/{dimension}", "/v1/leaderboard/app")
        assert board == {k: v for k, v in top.items()}
        rolling = await get_json(
            client, spec, "/v1/leaderboard/{dimension}/rolling", "/v1/leaderboard/app/rolling"
        )
        assert NO_APP not in {r["app"] for r in rolling["rows"]}
        assert rolling["unranked_tokens"] >= 10_000
        found = await get_json(
            client, spec, "/v1/history/app/{name}", f"/v1/history/app/{quote(LOOKALIKE)}"
        )
        assert (found["app"], found["weeks"][-1]["tokens"]) == (LOOKALIKE, 500)
        await get_json(client, spec, "/v1/history/app/{name}", "/v1/history/app/nobody", 404)
        wtd = await get_json(
            client,
            spec,
            "/v1/week-to-date/{dimension}",
            f"/v1/week-to-date/app?member=coder&day={days_of_week(WEEK)[0]}",
        )
        assert (wtd["app"], wtd["tokens"], wtd["last_week_tokens"]) == ("coder", 4000, 3000)
        await check_exports(client, spec, cli_json, outputs["parquet"], csv_out)


async def check_exports(
    client: Client, spec: Conformance, cli_json: dict[str, Any], parquet: bytes, csv_text: str
) -> None:
    """The API's exports are the CLI's, typed and named as downloads, cached with ETags."""
    template = "/v1/export/{dimension}"
    body = await get_json(client, spec, template, f"/v1/export/app?week={WEEK}&format=json")
    assert body == cli_json
    response = await client.get(f"/v1/export/app?week={WEEK}")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="tokenboard-app-{WEEK}.csv"'
    )
    assert (await response.read()).decode() == csv_text
    again = await client.get(
        f"/v1/export/app?week={WEEK}", headers={"If-None-Match": response.headers["ETag"]}
    )
    assert again.status == 304
    response = await client.get("/v1/export/app?format=parquet")
    assert response.headers["Content-Type"] == "application/vnd.apache.parquet"
    assert f"tokenboard-app-{WEEK}.parquet" in response.headers["Content-Disposition"]
    assert (
        pq.read_table(io.BytesIO(await response.read())).to_pylist()
        == pq.read_table(io.BytesIO(parquet)).to_pylist()
    )
    models = await client.get(f"/v1/export/model?week={WEEK}&format=parquet")
    table = pq.read_table(io.BytesIO(await models.read()))
    assert table.column_names == [c.name for c in columns_for("model")]
    assert table.to_pylist()[0]["model"] == MODEL
    await get_json(client, spec, template, "/v1/export/app?format=xlsx", 400)
    await get_json(client, spec, template, "/v1/export/app?week=2020-W01&format=json", 404)
    assert (await client.get("/v1/export/galaxy")).status == 404
