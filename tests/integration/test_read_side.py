"""The read side against the real stack: CLI views, HTTP API, OpenAPI conformance, live events.

The seed scenario is replayed once through a real worker; the API then runs in-process with
a Redis user that may only read, so any route that wrote would fail with NOPERM.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from fractions import Fraction
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from aggregations.scenario import Scenario, replay_events
from aggregations.weeks import week_id
from streams.cli.main import main
from streams.dev.replay import produce_scenario, wait_for_pipeline
from streams.http.api import build_api_app
from streams.http.openapi_read import openapi_document
from streams.settings import Settings
from streams.store.client import connect
from streams.store.keys import RedisKeys
from streams.store.report import weekly_report
from streams.topics import ensure_topics
from tests.integration.processes import WorkerProcess

StartWorker = Callable[..., WorkerProcess]
Client = TestClient[web.Request, web.Application]
SEED_WEEK = "2026-W47"
DEEPSEEK = "deepseek/deepseek-v4-flash"
DEEPSEEK_WEEKS = [
    900_000_000_000,
    1_000_000_000_000,
    1_100_000_000_000,
    1_300_000_000_000,
    1_600_000_000_000,
    2_066_000_000_000,
    3_430_000_000_000,
]
TOTAL_W46 = 26_908_000_000_000
TOTAL_W47 = 28_900_000_000_000
SPEC_URI = "urn:tokenboard:openapi"
#: The shipped list prices (USD per million input, output, cached input tokens) of the seed's
#: priced models in 2026-W47 (aggregations/data/prices.json); its other models have none.
SEED_PRICES = {
    "anthropic/claude-sonnet-4.6": (Fraction(3), Fraction(15), Fraction("0.30")),
    "google/gemini-3-flash": (Fraction("0.50"), Fraction(3), Fraction("0.05")),
    "openai/gpt-5.1": (Fraction("1.25"), Fraction(10), Fraction("0.125")),
    "x-ai/grok-4.1-fast": (Fraction("0.20"), Fraction("0.50"), Fraction("0.05")),
}
#: The seed report's opening lines: the seed week's facts, then its spend line.
SEED_REPORT_HEAD = [
    "2026-W47: 28.9T tokens, +7.4% week over week, the 5th consecutive week of growth.",
    "China (CN) 9.223T (+19.8%) leads United States (US) 4.93T (+16.0%),"
    " the 4th straight week ahead.",
    "#1 DeepSeek-V4-Flash 3.43T (+66.0%), up from #2.",
    "Spend ≥$16.2M (83.3% of tokens without a price): China (CN) models: spend unknown,"
    " 31.9% of tokens; United States (US) models 100.0% of spend, 17.1% of tokens.",
]


def seed_spend(scenario: Scenario, events_per_cell: int) -> dict[tuple[str, str], list[int]]:
    """(dimension, member) -> [cost, unpriced tokens] of the seed week as replayed, each
    event's exact cost in micro-dollars rounded half to even (computed here, in fractions)."""
    sums: dict[tuple[str, str], list[int]] = {}
    for event in replay_events(scenario, events_per_cell):
        if week_id(event.ts_ms) != SEED_WEEK:
            continue
        prices = SEED_PRICES.get(event.model)
        cost = (
            round(event.prompt_tokens * prices[0] + event.completion_tokens * prices[1])
            if prices
            else 0
        )
        unpriced = 0 if prices else event.tokens
        for key in (("model", event.model), ("country", str(event.country)), ("total", "all")):
            bucket = sums.setdefault(key, [0, 0])
            bucket[0] += cost
            bucket[1] += unpriced
    return sums


EVENT_LINE = re.compile(r"^\d{4}-W\d{2} (model|country|vendor) +[★↑↓] .+")


@pytest.fixture
async def readonly_settings(settings: Settings) -> AsyncIterator[Settings]:
    """The test settings with a Redis user allowed to read the test's keys and nothing else."""
    user, password = f"ro-{settings.redis_prefix}", uuid.uuid4().hex
    admin = aioredis.from_url(settings.redis_url)
    await admin.execute_command(
        "ACL", "SETUSER", user, "reset", "on", f">{password}",
        f"~{settings.redis_prefix}:*", "+@read", "+@connection", "+ping",
    )  # fmt: skip
    scheme, rest = settings.redis_url.split("://", 1)
    try:
        yield settings.replace(redis_url=f"{scheme}://{user}:{password}@{rest}")
    finally:
        await admin.execute_command("ACL", "DELUSER", user)
        await admin.aclose()


class Conformance:
    """Validates response bodies against the schemas of the served OpenAPI document."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(SPEC_URI, resource)
        self.checked: set[tuple[str, int]] = set()

    def validate(self, template: str, status: int, body: Any) -> None:
        """Fail unless ``body`` matches the documented JSON schema of that path and status."""
        response = self.document["paths"][template]["get"]["responses"][str(status)]
        schema = response["content"]["application/json"]["schema"]
        ref = {"$ref": SPEC_URI + schema["$ref"]} if "$ref" in schema else schema
        Draft202012Validator(ref, registry=self.registry).validate(body)
        self.checked.add((template, status))


async def get_json(
    client: Client, spec: Conformance, template: str, url: str, status: int = 200
) -> Any:
    """GET ``url``, check the status and content type, validate the body, return it."""
    response = await client.get(url)
    body = await response.json()
    assert response.status == status, (url, body)
    assert response.content_type == "application/json"
    spec.validate(template, status, body)
    return body


async def cli(
    capsys: pytest.CaptureFixture[str], settings: Settings, *argv: str
) -> tuple[int, str, str]:
    """Run ``tokenboard`` in a thread (it starts its own event loop): exit code, out, err."""
    flags = [
        "--kafka", settings.kafka_bootstrap, "--redis", settings.redis_url,
        "--topic-prefix", settings.topic_prefix, "--redis-prefix", settings.redis_prefix,
    ]  # fmt: skip
    command, *rest = argv
    capsys.readouterr()
    code = await asyncio.to_thread(main, [command, *flags, *rest])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def run_cli(capsys: pytest.CaptureFixture[str], settings: Settings, *argv: str) -> str:
    """Run ``tokenboard``, require success and return its stdout."""
    code, out, err = await cli(capsys, settings, *argv)
    assert code == 0, err
    return out


async def first_sse_messages(client: Client, url: str, count: int) -> list[str]:
    """The first ``count`` SSE messages (blank-line separated blocks) of a stream."""
    response = await client.get(url)
    assert response.status == 200
    assert response.content_type == "text/event-stream"
    messages: list[str] = []
    block: list[str] = []
    try:
        while len(messages) < count:
            line = (await response.content.readline()).decode()
            if line.strip():
                block.append(line.strip())
            elif block:
                if not block[0].startswith(":"):
                    messages.append("\n".join(block))
                block = []
    finally:
        response.close()
    return messages


async def test_cli_api_and_openapi_over_the_seed_replay(
    settings: Settings,
    readonly_settings: Settings,
    start_worker: StartWorker,
    seed_scenario: Scenario,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """After the seed replay, CLI and every API route show the seed week's exact facts."""
    await ensure_topics(settings)
    start_worker("w1")
    await produce_scenario(settings, seed_scenario, 5, show=False)
    await wait_for_pipeline(settings, seed_scenario, timeout_s=120, show=False)

    # CLI ------------------------------------------------------------------------------
    top = await run_cli(capsys, readonly_settings, "top", "--week", SEED_WEEK)
    first_row = next(line for line in top.splitlines() if "DeepSeek-V4-Flash" in line)
    assert "3.43T" in first_row and "↑1" in first_row and "+66.0%" in first_row
    assert "total 28.9T" in top
    countries = await run_cli(capsys, readonly_settings, "top", "--by", "country", "-n", "2")
    assert "9.223T" in countries and "4.93T" in countries
    as_json = json.loads(await run_cli(capsys, readonly_settings, "top", "--json", "-n", "3"))
    assert [r["model"] for r in as_json["rows"]][:2] == [DEEPSEEK, "tencent/hy3-preview"]
    # The seed's events name no app: every token is the unranked no-app member's.
    apps = await run_cli(capsys, readonly_settings, "top", "--dim", "app", "--week", SEED_WEEK)
    assert apps.splitlines()[0] == (
        f"{SEED_WEEK} · top 0 apps of 0 · total 28.9T · (no app) 28.9T, not ranked"
    )
    # The seed report reads as before, its spend line after the week's facts.
    text = await run_cli(capsys, readonly_settings, "report", "--week", SEED_WEEK)
    assert text.splitlines()[:4] == SEED_REPORT_HEAD
    exported = await run_cli(capsys, readonly_settings, "export", "--week", SEED_WEEK)
    header, first_line = exported.splitlines()[:2]
    assert header.startswith("rank,model,name,vendor,country,tokens,")
    assert first_line.startswith(f"1,{DEEPSEEK},DeepSeek-V4-Flash,DeepSeek,CN,3430000000000,")
    history = json.loads(
        await run_cli(capsys, readonly_settings, "history", "--model", DEEPSEEK, "--json")
    )
    assert [w["tokens"] for w in history["weeks"]] == DEEPSEEK_WEEKS
    assert history["weeks"][-1]["rank"] == 1 and history["weeks"][-2]["rank"] == 2
    table = await run_cli(capsys, readonly_settings, "history", "--country", "cn")
    assert "China (CN)" in table and "9.223T" in table
    code, _, err = await cli(capsys, readonly_settings, "top", "--week", "2020-W01")
    assert code == 1 and "no data for 2020-W01" in err
    watched = await run_cli(capsys, readonly_settings, "watch", "--from-beginning", "--limit", "3")
    lines = watched.splitlines()
    assert len(lines) == 3
    assert all(EVENT_LINE.match(line) for line in lines), lines

    # API --------------------------------------------------------------------------------
    async with TestClient(TestServer(build_api_app(readonly_settings))) as client:
        spec = Conformance(await (await client.get("/openapi.json")).json())
        assert spec.document == openapi_document()
        await check_api_routes(client, spec, readonly_settings)
        await check_seed_spend(client, spec, seed_scenario)
        await check_api_errors(client, spec)
        ready, event = await first_sse_messages(client, "/v1/events/stream?backlog=2", 2)
        assert ready.startswith("event: ready")
        payload = orjson.loads(event.removeprefix("data: "))
        kind = "RankingChange" if payload["type"] == "ranking_change" else "Alert"
        Draft202012Validator(
            {"$ref": f"{SPEC_URI}#/components/schemas/{kind}"}, registry=spec.registry
        ).validate(payload)
        assert payload["text"].startswith(payload["week"])
        metrics = await (await client.get("/metrics")).text()
        assert (
            'tokenboard_http_requests_total{route="/v1/overview",service="api",status="200"}'
            in (metrics)
        )
    documented = {path for path in spec.document["paths"] if path.startswith("/v1/")}
    assert documented - {"/v1/events/stream"} <= {t for t, _ in spec.checked}


async def check_seed_spend(client: Client, spec: Conformance, scenario: Scenario) -> None:
    """The seed week's spend, exact to the micro-dollar: the spend board of models and
    countries, the report's spend and the boards' totals; an unpriced model's cost is
    unknown (null), never 0."""
    expected = seed_spend(scenario, 5)
    cost, unpriced = expected[("total", "all")]
    assert (cost > 0, unpriced) == (True, 24_070_000_000_000)
    board = await get_json(
        client, spec, "/v1/leaderboard/{dimension}", "/v1/leaderboard/model?by=spend&n=100"
    )
    assert {r["model"]: r["cost_micro_usd"] for r in board["rows"]} == {
        m: v[0] for (d, m), v in expected.items() if d == "model" and m in SEED_PRICES
    }
    assert [r["model"] for r in board["rows"]] == [
        "anthropic/claude-sonnet-4.6", "openai/gpt-5.1", "google/gemini-3-flash",
        "x-ai/grok-4.1-fast",
    ]  # fmt: skip
    assert (board["total_cost_micro_usd"], board["unpriced_tokens"]) == (cost, unpriced)
    assert (board["ranked"], board["unpriced_members"]) == (4, 72)
    countries = await get_json(
        client, spec, "/v1/leaderboard/{dimension}", "/v1/leaderboard/country?n=3"
    )
    assert [(r["country"], r["cost_micro_usd"]) for r in countries["rows"]] == [
        ("CN", None), ("US", expected[("country", "US")][0]), ("FR", None),
    ]  # fmt: skip
    report = await get_json(client, spec, "/v1/report", f"/v1/report?week={SEED_WEEK}")
    assert (report["spend"]["cost_micro_usd"], report["spend"]["unpriced_tokens"]) == (
        cost, unpriced,
    )  # fmt: skip
    assert report["spend"]["countries"][:2] == [
        {"country": "CN", "cost_micro_usd": None, "unpriced_tokens": 9_223_000_000_000,
         "spend_share_pct": None, "token_share_pct": 9_223 / 28_900 * 100},
        {"country": "US", "cost_micro_usd": cost, "unpriced_tokens": 100_000_000_000,
         "spend_share_pct": 100.0, "token_share_pct": 4_930 / 28_900 * 100},
    ]  # fmt: skip


async def check_api_routes(client: Client, spec: Conformance, settings: Settings) -> None:
    """Every read route answers 200 with the seed's numbers and a documented body."""
    board = await get_json(client, spec, "/v1/leaderboard/{dimension}", "/v1/leaderboard/model")
    assert board["week"] == SEED_WEEK and board["total_tokens"] == TOTAL_W47
    leader = board["rows"][0]
    assert (leader["model"], leader["name"], leader["tokens"]) == (
        DEEPSEEK, "DeepSeek-V4-Flash", 3_430_000_000_000,
    )  # fmt: skip
    assert (leader["prev_rank"], leader["move"], round(leader["wow_pct"], 2)) == (2, "↑1", 66.02)
    assert len(board["rows"]) == 10
    last = await get_json(
        client, spec, "/v1/leaderboard/{dimension}", "/v1/leaderboard/model?week=last&n=1"
    )
    assert last["week"] == "2026-W46" and last["rows"][0]["model"] == "tencent/hy3-preview"
    first = await get_json(
        client, spec, "/v1/leaderboard/{dimension}", "/v1/leaderboard/vendor?week=2026-W41"
    )
    assert first["has_previous"] is False and first["rows"][0]["prev_rank"] is None
    by_country = await get_json(
        client, spec, "/v1/leaderboard/{dimension}", "/v1/leaderboard/country?n=2"
    )
    assert [(r["country"], r["tokens"]) for r in by_country["rows"]] == [
        ("CN", 9_223_000_000_000), ("US", 4_930_000_000_000),
    ]  # fmt: skip

    apps = await get_json(client, spec, "/v1/leaderboard/{dimension}", "/v1/leaderboard/app")
    assert (apps["rows"], apps["ranked"], apps["unranked_tokens"]) == ([], 0, TOTAL_W47)
    export = await get_json(
        client, spec, "/v1/export/{dimension}", f"/v1/export/model?week={SEED_WEEK}&format=json"
    )
    assert export["ranked"] == len(export["rows"]) > 10 and export["total_tokens"] == TOTAL_W47
    assert export["rows"][0]["model"] == DEEPSEEK and "move" not in export["rows"][0]

    rolling_path = "/v1/leaderboard/{dimension}/rolling"
    rolling = await get_json(client, spec, rolling_path, "/v1/leaderboard/model/rolling")
    assert (rolling["from"], rolling["to"], rolling["total_tokens"]) == (
        "2026-11-16", "2026-11-22", TOTAL_W47,
    )  # fmt: skip
    assert rolling["rows"][0]["model"] == DEEPSEEK
    assert rolling["rows"][0]["tokens"] == 3_430_000_000_000
    fortnight = await get_json(
        client, spec, rolling_path, "/v1/leaderboard/country/rolling?days=14&end=2026-11-22&n=1"
    )
    assert fortnight["total_tokens"] == TOTAL_W46 + TOTAL_W47
    assert fortnight["rows"][0]["country"] == "CN"

    report = await get_json(client, spec, "/v1/report", f"/v1/report?week={SEED_WEEK}&top=10")
    reader = connect(settings)
    try:
        direct = await weekly_report(reader, RedisKeys(settings.redis_prefix), SEED_WEEK, 10)
    finally:
        await reader.aclose()
    assert report == direct
    assert report["total"]["tokens"] == TOTAL_W47 and report["models"][0]["model"] == DEEPSEEK

    model = await get_json(
        client, spec, "/v1/history/model/{model_id}", f"/v1/history/model/{DEEPSEEK}"
    )
    assert [w["tokens"] for w in model["weeks"]] == DEEPSEEK_WEEKS
    country = await get_json(client, spec, "/v1/history/country/{code}", "/v1/history/country/cn")
    assert country["weeks"][-1]["tokens"] == 9_223_000_000_000
    vendor = await get_json(
        client, spec, "/v1/history/vendor/{name}", "/v1/history/vendor/DeepSeek"
    )
    assert vendor["weeks"][-1]["rank"] == 1

    overview = await get_json(client, spec, "/v1/overview", "/v1/overview")
    assert overview["current_week"] == SEED_WEEK and len(overview["weeks"]) == 7
    assert overview["total"]["tokens"] == TOTAL_W47
    assert overview["total"]["growth_streak"] == 5
    wtd_path = "/v1/week-to-date/{dimension}"
    wtd = await get_json(client, spec, wtd_path, "/v1/week-to-date/total?day=2026-11-18")
    assert wtd["week"] == SEED_WEEK and 0 < wtd["tokens"] < TOTAL_W47
    assert wtd["last_week_tokens"] > 0 and wtd["wow_pct"] is not None
    full = await get_json(
        client, spec, wtd_path, "/v1/week-to-date/country?member=cn&day=2026-11-22"
    )
    assert (full["tokens"], full["last_week_tokens"]) == (9_223_000_000_000, 7_700_000_000_000)
    shares = await get_json(client, spec, "/v1/countries/shares", "/v1/countries/shares")
    assert len(shares["weeks"]) == 7 and shares["totals"][-1] == TOTAL_W47
    assert shares["countries"][0]["country"] == "CN"
    assert shares["countries"][0]["tokens"][-1] == 9_223_000_000_000
    recent = await get_json(client, spec, "/v1/countries/shares", "/v1/countries/shares?weeks=2")
    assert recent["weeks"] == ["2026-W46", SEED_WEEK]

    dead = await get_json(client, spec, "/v1/dead-letters", "/v1/dead-letters?since=7d")
    assert (dead["matched"], dead["dead_letters"]) == (0, [])  # the seed has no bad event

    await get_json(client, spec, "/healthz", "/healthz")
    await wait_ready(client)
    page = await client.get("/")
    assert page.status == 200 and 'data-testid="top-models"' in await page.text()
    for asset in ("/static/dashboard.js", "/static/vendor/chart.umd.min.js"):
        assert (await client.get(asset)).status == 200


async def check_api_errors(client: Client, spec: Conformance) -> None:
    """Unknown weeks and members are 404, bad parameters 400, other methods 405."""
    not_found = [
        ("/v1/leaderboard/{dimension}", "/v1/leaderboard/model?week=2020-W01"),
        ("/v1/history/model/{model_id}", "/v1/history/model/nobody/nothing"),
        ("/v1/history/country/{code}", "/v1/history/country/XX"),
        ("/v1/history/app/{name}", "/v1/history/app/support-bot"),
        ("/v1/report", "/v1/report?week=2020-W01"),
    ]
    for template, url in not_found:
        await get_json(client, spec, template, url, 404)
    for url in ("/v1/leaderboard/galaxy", "/v2/anything", "/static/missing.js"):
        response = await client.get(url)
        assert response.status == 404 and "error" in await response.json()
    bad = [
        ("/v1/leaderboard/{dimension}", "/v1/leaderboard/model?week=W47"),
        ("/v1/leaderboard/{dimension}", "/v1/leaderboard/model?n=0"),
        ("/v1/leaderboard/{dimension}", "/v1/leaderboard/model?n=ten"),
        ("/v1/leaderboard/{dimension}/rolling", "/v1/leaderboard/model/rolling?days=40"),
        ("/v1/leaderboard/{dimension}/rolling", "/v1/leaderboard/model/rolling?end=22.11.2026"),
        ("/v1/report", "/v1/report?top=0"),
        ("/v1/countries/shares", "/v1/countries/shares?weeks=-1"),
    ]
    for template, url in bad:
        await get_json(client, spec, template, url, 400)
    for method, url in [
        ("POST", "/v1/overview"),
        ("PUT", "/v1/leaderboard/model"),
        ("DELETE", "/v1/history/model/deepseek/deepseek-v4-flash"),
        ("PATCH", "/"),
        ("POST", "/nowhere"),
    ]:
        response = await client.request(method, url, data=b"{}")
        assert response.status == 405, (method, url)
        assert response.headers["Allow"] == "GET, HEAD"
        assert (await response.json())["status"] == 405


async def wait_ready(client: Client) -> None:
    """Wait for /readyz to report ready (its first Redis ping runs in the background)."""
    while True:
        response = await client.get("/readyz")
        if response.status == 200:
            assert (await response.json()) == {"status": "ready", "service": "api"}
            return
        await asyncio.sleep(0.1)


async def test_api_before_any_data(readonly_settings: Settings) -> None:
    """With nothing produced yet the API answers documented 404s and empty overviews."""
    async with TestClient(TestServer(build_api_app(readonly_settings))) as client:
        spec = Conformance(await (await client.get("/openapi.json")).json())
        overview = await get_json(client, spec, "/v1/overview", "/v1/overview")
        assert overview["current_week"] is None and overview["total"] is None
        shares = await get_json(client, spec, "/v1/countries/shares", "/v1/countries/shares")
        assert shares == {"weeks": [], "totals": [], "countries": []}
        await get_json(client, spec, "/v1/leaderboard/{dimension}", "/v1/leaderboard/model", 404)
        rolling = "/v1/leaderboard/{dimension}/rolling"
        await get_json(client, spec, rolling, "/v1/leaderboard/model/rolling", 404)
        await get_json(client, spec, "/v1/report", "/v1/report", 404)
        # The topics do not exist yet: the stream still opens and waits for them.
        (ready,) = await first_sse_messages(client, "/v1/events/stream", 1)
        assert ready.startswith("event: ready")
        await wait_ready(client)
