"""``tokenboard replay FILE.json``: produce a scenario's events and wait until Redis shows them."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import redis.asyncio as aioredis

from aggregations.report import format_tokens
from aggregations.scenario import Scenario, replay_events
from streams.sdk.producer import UsageProducer
from streams.settings import Settings
from streams.store.client import connect
from streams.store.keys import RedisKeys
from streams.topics import ensure_topics


class ReplayTimeout(TimeoutError):
    """The pipeline did not reflect the replayed events in time."""


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario table file."""
    try:
        return Scenario.from_mapping(orjson.loads(Path(path).read_bytes()))
    except (OSError, orjson.JSONDecodeError, KeyError, ValueError) as exc:
        raise SystemExit(f"error: cannot read scenario {path}: {exc}") from exc


def _progress(label: str, done: int, total: int, started: float) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    rate = done / max(time.monotonic() - started, 1e-6)
    sys.stderr.write(
        f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} ({rate:,.0f}/s)"
    )
    sys.stderr.flush()


async def produce_scenario(
    settings: Settings, scenario: Scenario, events_per_cell: int, *, show: bool = True
) -> int:
    """Produce every event of the scenario; returns how many were acknowledged."""
    total = scenario.event_count(events_per_cell)
    started = time.monotonic()
    sent = 0
    async with UsageProducer(settings) as producer:
        pending = []
        for event in replay_events(scenario, events_per_cell):
            pending.append(await producer.send(event))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                sent += len(pending)
                pending.clear()
                if show:
                    _progress("producing", sent, total, started)
        await asyncio.gather(*pending)
        sent += len(pending)
    if show:
        _progress("producing", sent, total, started)
        sys.stderr.write("\n")
    return sent


async def wait_for_pipeline(
    settings: Settings,
    scenario: Scenario,
    timeout_s: float,
    *,
    show: bool = True,
    exact: bool = True,
) -> float:
    """Wait until Redis holds the scenario's week and model totals; returns seconds.

    ``exact`` (the tests) waits for equality. Without it (``tokenboard replay``) every total
    must reach at least the scenario's: other producers may have added to the same weeks
    (the README's examples write to the seed week), and a replay must not wait for them to
    go away. A replay of the same scenario again adds nothing: its event ids count once.
    """

    def reached(value: object, target: int) -> bool:
        got = int(float(str(value))) if value is not None else 0
        return got == target if exact else got >= target

    keys = RedisKeys(settings.redis_prefix)
    expected_weeks = scenario.week_totals()
    expected_cells = scenario.cell_totals()
    client = connect(settings)
    started = time.monotonic()
    try:
        while True:
            pipe = client.pipeline(transaction=False)
            for week in expected_weeks:
                pipe.hget(keys.total(week), "tokens")
            values = await pipe.execute()
            matching = sum(
                1 for week, v in zip(expected_weeks, values, strict=True)
                if v is not None and reached(v, expected_weeks[week])
            )  # fmt: skip
            if show:
                _progress("pipeline ", matching, len(expected_weeks), started)
            if matching == len(expected_weeks):
                mismatches = await _cell_mismatches(client, keys, expected_cells, reached)
                if not mismatches:
                    if show:
                        sys.stderr.write("\n")
                    return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                got = {w: int(v or 0) for w, v in zip(expected_weeks, values, strict=True)}
                detail = ", ".join(
                    f"{w}: {format_tokens(got[w])} of {format_tokens(t)}"
                    for w, t in expected_weeks.items()
                    if not reached(got[w], t)
                )
                raise ReplayTimeout(
                    f"the pipeline did not reflect the replay within {timeout_s:.0f} s "
                    f"({detail or 'week totals match, some model totals do not'}); "
                    "is `tokenboard worker` running against the same Kafka, Redis and prefixes?"
                )
            await asyncio.sleep(0.25)
    finally:
        await client.aclose()


async def _cell_mismatches(
    client: aioredis.Redis,
    keys: RedisKeys,
    expected: dict[tuple[str, str], int],
    reached: Callable[[object, int], bool],
) -> list[tuple[str, str]]:
    pipe = client.pipeline(transaction=False)
    cells = list(expected)
    for week, model in cells:
        pipe.zscore(keys.leaderboard("model", week), model)
    scores = await pipe.execute()
    return [
        cell for cell, score in zip(cells, scores, strict=True)
        if score is None or not reached(score, expected[cell])
    ]  # fmt: skip


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler."""
    scenario = load_scenario(args.file)

    async def go() -> float:
        await ensure_topics(settings)
        n = await produce_scenario(settings, scenario, args.events)
        print(
            f"produced {n:,} events for {len(scenario.weeks)} weeks x {len(scenario.models)} models"
        )
        if args.no_wait:
            return 0.0
        print(
            f"waiting until Redis shows at least the scenario's totals of "
            f"{len(scenario.weeks)} weeks and {len(scenario.cell_totals())} (week, model) cells"
        )
        return await wait_for_pipeline(settings, scenario, args.timeout, exact=False)

    try:
        seconds = asyncio.run(go())
    except ReplayTimeout as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    if not args.no_wait:
        print(f"pipeline reflects every week and model total ({seconds:.1f} s later)")
    return 0
