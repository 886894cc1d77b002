"""Spend against the real stack: events with priced, unpriced and cached tokens flow through a
real worker (prices shipped and overridden, one price changing mid-week) into exact cost
fields and spend boards in every dimension; the CLI, the read API, the exports and the weekly
report read them, and a cost is never shown as 0 when no token had a price.

Expected costs are computed here independently, in exact fractions rounded half to even per
event (aggregations/prices.py states the rule), from prices written in this file.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import random
import re
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from aggregations.events import UsageEvent
from aggregations.report import country_label
from aggregations.totals import NO_APP
from aggregations.weeks import DAY_MS, days_of_week, previous_week, week_id, week_start_ms
from streams.http.api import build_api_app
from streams.sdk.producer import UsageProducer
from streams.settings import Settings
from streams.store.keys import RedisKeys
from streams.topics import ensure_topics
from tests.integration.private_stack import Expected, wait_for_totals, wait_until
from tests.integration.processes import WorkerProcess
from tests.integration.test_read_side import (  # noqa: F401 - readonly_settings is a fixture
    Conformance,
    get_json,
    readonly_settings,
    run_cli,
)

StartWorker = Callable[..., WorkerProcess]
#: A whole week in the past: every day of it is over, none is too old.
WEEK = previous_week(week_id(time.time_ns() // 1_000_000))
DAYS = days_of_week(WEEK)
START = week_start_ms(WEEK)
#: The operator's override file: a price that changes on Wednesday, with six decimals; a model
#: priced from Thursday only; one shipped model (Claude Sonnet 4.6) is not named, so its
#: shipped price applies.
OVERRIDES = [
    {"model": "spend/dated", "from": DAYS[0], "input": "0.27", "output": "1.10",
     "cached_input": "0.07"},
    {"model": "spend/dated", "from": DAYS[2], "input": "0.333333", "output": "1.5",
     "cached_input": "0.033333"},
    {"model": "spend/thursday", "from": DAYS[3], "input": "2", "output": "8"},
]  # fmt: skip
SHIPPED = "anthropic/claude-sonnet-4.6"
#: USD per million (input, output, cached input) by model and first day (index in DAYS).
PRICES: dict[str, list[tuple[int, tuple[Fraction, Fraction, Fraction]]]] = {
    "spend/dated": [
        (0, (Fraction("0.27"), Fraction("1.10"), Fraction("0.07"))),
        (2, (Fraction("0.333333"), Fraction("1.5"), Fraction("0.033333"))),
    ],
    "spend/thursday": [(3, (Fraction(2), Fraction(8), Fraction(2)))],
    SHIPPED: [(0, (Fraction(3), Fraction(15), Fraction("0.30")))],
}
#: model -> (vendor, country) the events carry.
MODELS = {
    "spend/dated": ("Spendco", "FR"),
    "spend/thursday": ("Spendco", "FR"),
    "spend/unpriced": ("Nopriceco", "DE"),
    SHIPPED: ("Anthropic", "US"),
}
APPS = ("support-bot", None, "coder")


def make_events(count: int = 84, seed: int = 18) -> list[UsageEvent]:
    """Events over the week's seven days, the four models and three apps, with odd token
    counts (so that costs round), cached tokens, and cached beyond the prompt once."""
    rng = random.Random(seed)
    out: list[UsageEvent] = []
    models = list(MODELS)
    for i in range(count):
        model = models[i % len(models)]
        vendor, country = MODELS[model]
        prompt = rng.randrange(1, 3_000_000)
        cached = rng.choice([0, rng.randrange(0, prompt + 1)])
        if i == 5:
            cached = prompt + 17  # more than the prompt: priced as the whole prompt cached
        out.append(
            UsageEvent(
                event_id=f"spend-{seed}-{i}",
                ts_ms=START + (i % 7) * DAY_MS + 3_600_000 + i * 1000,
                model=model,
                prompt_tokens=prompt,
                completion_tokens=rng.randrange(0, 400_000),
                cached_tokens=cached,
                vendor=vendor,
                country=country,
                app=APPS[i % len(APPS)],
            )
        )
    return out


def rates(model: str, ts_ms: int) -> tuple[Fraction, Fraction, Fraction] | None:
    """This file's price of ``model`` on the UTC day of ``ts_ms`` (None: no price)."""
    day = (ts_ms - START) // DAY_MS
    found = None
    for first, prices in PRICES.get(model, []):
        if day >= first:
            found = prices
    return found


def expected_spend(events: list[UsageEvent]) -> dict[tuple[str, str], list[int]]:
    """(dimension, member) -> [tokens, cost, unpriced tokens], each event's cost the exact
    rational cost in micro-dollars rounded half to even (Python's round of a Fraction)."""
    sums: dict[tuple[str, str], list[int]] = {}
    for event in events:
        found = rates(event.model, event.ts_ms)
        if found is None:
            cost, unpriced = 0, event.tokens
        else:
            cached = min(event.cached_tokens, event.prompt_tokens)
            usd = (
                (event.prompt_tokens - cached) * found[0]
                + cached * found[2]
                + event.completion_tokens * found[1]
            )
            cost, unpriced = round(usd), 0  # USD per million tokens: micro-dollars per token
        vendor, country = MODELS[event.model]
        for key in (("model", event.model), ("country", country), ("vendor", vendor),
                    ("app", event.app or NO_APP), ("total", "all")):  # fmt: skip
            bucket = sums.setdefault(key, [0, 0, 0])
            bucket[0] += event.tokens
            bucket[1] += cost
            bucket[2] += unpriced
    return sums


async def redis_spend(
    client: aioredis.Redis, keys: RedisKeys, members: list[tuple[str, str]]
) -> dict[tuple[str, str], list[int]]:
    """[tokens, cost, unpriced] of each (dimension, member) hash of the week."""
    pipe = client.pipeline(transaction=False)
    for dimension, member in members:
        key = keys.total(WEEK) if dimension == "total" else keys.member(dimension, WEEK, member)
        pipe.hmget(key, ["tokens", "cost_micro_usd", "unpriced_tokens"])
    rows = await pipe.execute()
    return {m: [int(v or -1) for v in row] for m, row in zip(members, rows, strict=True)}


async def test_spend_is_counted_exactly_and_served_everywhere(
    settings: Settings,
    readonly_settings: Settings,  # noqa: F811 - the fixture imported above
    start_worker: StartWorker,
    redis_client: aioredis.Redis,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Cost and unpriced tokens exact in every dimension's hashes and spend boards; boards by
    spend, cost columns and the report's spend line from the CLI, the API and the exports."""
    prices = tmp_path / "prices.json"
    prices.write_bytes(orjson.dumps({"version": 1, "prices": OVERRIDES}))
    keys = RedisKeys(settings.redis_prefix)
    await ensure_topics(settings)
    worker = start_worker("w1", prices_path=str(prices))
    events = make_events()
    async with UsageProducer(settings) as producer:
        await producer.send_many(events)
        await producer.send_many(events[:10])  # resent: counted once, costed once
    await wait_for_totals(settings, Expected.of(events), 90, [worker])
    expected = expected_spend(events)

    # Redis: every dimension's hash, and the spend boards ---------------------------------------
    async def exact() -> dict[tuple[str, str], list[int]] | None:
        found = await redis_spend(redis_client, keys, list(expected))
        return found if found == expected else None

    await wait_until(exact, timeout_s=60, what="cost and unpriced tokens exact in every hash")
    assert expected[("model", "spend/unpriced")][1:] == [
        0,
        expected[("model", "spend/unpriced")][0],
    ]
    assert 0 < expected[("model", "spend/thursday")][2] < expected[("model", "spend/thursday")][0]
    for dimension in ("model", "country", "vendor", "app"):
        board = await redis_client.zrange(keys.spend_board(dimension, WEEK), 0, -1, withscores=True)
        assert {m: int(s) for m, s in board} == {
            member: cost
            for (dim, member), (tokens, cost, unpriced) in expected.items()
            if dim == dimension and unpriced < tokens and member != NO_APP
        }, dimension
    # The unpriced model is on the token board, never on the spend board (unknown, not 0).
    assert await redis_client.zscore(keys.leaderboard("model", WEEK), "spend/unpriced")
    assert await redis_client.zscore(keys.spend_board("model", WEEK), "spend/unpriced") is None

    by_cost = sorted(
        ((m, v[1]) for (d, m), v in expected.items() if d == "model" and v[2] < v[0]),
        key=lambda item: (-item[1], item[0]),
    )
    total_tokens, total_cost, total_unpriced = expected[("total", "all")]

    # API ---------------------------------------------------------------------------------------
    async with TestClient(TestServer(build_api_app(readonly_settings))) as client:
        spec = Conformance(await (await client.get("/openapi.json")).json())
        template = "/v1/leaderboard/{dimension}"
        board = await get_json(
            client, spec, template, f"/v1/leaderboard/model?week={WEEK}&by=spend"
        )
        assert board["by"] == "spend"
        assert [(r["model"], r["cost_micro_usd"]) for r in board["rows"]] == by_cost
        assert [r["rank"] for r in board["rows"]] == [1, 2, 3]
        assert (board["total_cost_micro_usd"], board["unpriced_tokens"]) == (
            total_cost, total_unpriced,
        )  # fmt: skip
        assert (board["ranked"], board["unpriced_members"]) == (3, 1)
        assert sum(r["spend_share_pct"] for r in board["rows"]) == pytest.approx(100.0)
        thursday = next(r for r in board["rows"] if r["model"] == "spend/thursday")
        assert thursday["unpriced_tokens"] == expected[("model", "spend/thursday")][2]
        tokens = await get_json(client, spec, template, f"/v1/leaderboard/model?week={WEEK}")
        unpriced = next(r for r in tokens["rows"] if r["model"] == "spend/unpriced")
        assert (unpriced["cost_micro_usd"], unpriced["spend_share_pct"]) == (None, None)
        apps = await get_json(client, spec, template, f"/v1/leaderboard/app?week={WEEK}&by=spend")
        assert {r["app"]: r["cost_micro_usd"] for r in apps["rows"]} == {
            app: expected[("app", app)][1] for app in ("support-bot", "coder")
        }
        await get_json(client, spec, template, "/v1/leaderboard/model?by=euros", 400)
        report = await get_json(client, spec, "/v1/report", f"/v1/report?week={WEEK}")
        spend = report["spend"]
        assert (spend["cost_micro_usd"], spend["unpriced_tokens"]) == (total_cost, total_unpriced)
        assert {c["country"]: (c["cost_micro_usd"], c["unpriced_tokens"]) for c in spend[
            "countries"
        ]} == {
            "FR": tuple(expected[("country", "FR")][1:]),
            "US": tuple(expected[("country", "US")][1:]),
            "DE": (None, expected[("country", "DE")][0]),
        }  # fmt: skip
        exported = await get_json(
            client, spec, "/v1/export/{dimension}", f"/v1/export/model?week={WEEK}&format=json"
        )
        assert {r["model"]: r["cost_micro_usd"] for r in exported["rows"]} == {
            m: (v[1] if v[2] < v[0] else None) for (d, m), v in expected.items() if d == "model"
        }

    # CLI ---------------------------------------------------------------------------------------
    table = await run_cli(capsys, readonly_settings, "top", "--week", WEEK, "--by", "spend")
    head, _, header, *rows = table.splitlines()
    assert head.startswith(f"{WEEK} · top 3 models by spend of 3 with a price · spend ≥$")
    assert head.endswith("tokens without a price (1 models without any) · no data for " +
                         previous_week(WEEK))  # fmt: skip
    assert header.split()[5:7] == ["spend", "tokens"]
    names = {SHIPPED: "Claude Sonnet 4.6"}
    cells = [re.split(r" {2,}", r.strip()) for r in rows]
    assert [c[2] for c in cells] == [names.get(m, m) for m, _ in by_cost]
    spent = [next(cell for cell in r.split() if "$" in cell) for r in rows]
    assert spent[[m for m, _ in by_cost].index("spend/thursday")].startswith("≥$")
    assert all(cell.startswith("$") for cell, (m, _) in zip(spent, by_cost, strict=True)
               if m != "spend/thursday")  # fmt: skip
    by_tokens = await run_cli(capsys, readonly_settings, "top", "--week", WEEK)
    assert "unknown" in next(line for line in by_tokens.splitlines() if "spend/unpriced" in line)
    as_json = json.loads(
        await run_cli(capsys, readonly_settings, "top", "--week", WEEK, "--by", "spend", "--json")
    )
    assert as_json == board
    countries = json.loads(
        await run_cli(
            capsys, readonly_settings, "top", "--week", WEEK, "--by", "country", "--by", "spend",
            "--json",
        )
    )  # fmt: skip
    assert [(r["country"], r["cost_micro_usd"]) for r in countries["rows"]] == sorted(
        ((c, expected[("country", c)][1]) for c in ("FR", "US")), key=lambda i: -i[1]
    )
    csv_text = await run_cli(capsys, readonly_settings, "export", "--week", WEEK)
    exported_rows = {r["model"]: r for r in csv.DictReader(io.StringIO(csv_text, newline=""))}
    assert exported_rows["spend/unpriced"]["cost_micro_usd"] == ""  # unknown, not 0
    assert exported_rows["spend/dated"]["cost_micro_usd"] == str(
        expected[("model", "spend/dated")][1]
    )
    text = await run_cli(capsys, readonly_settings, "report", "--week", WEEK)
    line = next(line for line in text.splitlines() if line.startswith("Spend "))
    share = total_unpriced / total_tokens * 100
    assert line.startswith("Spend ≥$") and f" ({share:.1f}% of tokens without a price): " in line
    leading = sorted(("FR", "US", "DE"), key=lambda c: -expected[("country", c)][0])[:2]
    phrases = []
    for code in leading:
        tokens, cost, unpriced = expected[("country", code)]
        of_tokens = f"{tokens / total_tokens * 100:.1f}% of tokens"
        if unpriced == tokens:
            phrases.append(f"{country_label(code)} models: spend unknown, {of_tokens}")
        else:
            phrases.append(
                f"{country_label(code)} models {cost / total_cost * 100:.1f}% of spend, {of_tokens}"
            )
    assert line.endswith(": " + "; ".join(phrases) + ".")
    assert total_tokens == Expected.of(events).weeks[WEEK]


async def test_a_bad_price_file_stops_the_worker_with_one_line(
    settings: Settings, tmp_path: Path
) -> None:
    """An invalid TOKENBOARD_PRICES_PATH stops `tokenboard worker` at start, naming the file
    and the entry, without a traceback."""
    bad = tmp_path / "prices.json"
    bad.write_bytes(orjson.dumps({"prices": [{"model": "m", "from": "2026-01-01", "input": 0.5}]}))
    env = settings.replace(prices_path=str(bad)).to_env()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streams", "worker",
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    text = err.decode()
    assert text.startswith(f"error: price catalog {bad} is invalid: price entry #0 ('m')")
    assert "Traceback" not in text
