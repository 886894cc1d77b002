"""The ranker's incremental paths against the real Redis: rank fields written incrementally are
those of a full recompute, the top N read without the board's tail is the full ranking's
head, and the closing alerts read from the slim history are those of the full one."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from aggregations.alerts import week_alerts
from aggregations.rankings import Ranked, rank
from aggregations.totals import NO_APP, RANKED_DIMENSIONS
from aggregations.weeks import previous_week, week_start_ms
from streams.leader import rank_fields
from streams.leader.history import alert_history
from streams.leader.rank_fields import (
    RankFields,
    adds_up,
    fingerprint,
    member_fields,
    rank_due,
    total_fields,
)
from streams.settings import Settings
from streams.store.keys import RedisKeys
from streams.store.state import WeekNotFound, read_history

WEEKS = ["2026-W09", "2026-W10", "2026-W11", "2026-W12"]
MODELS = [f"org{i % 3}/m{i}" for i in range(24)] + ["a:b", "é/ü", "Z"]
COUNTRIES = ["US", "CN", "FR", "DE"]
VENDORS = ["Acme", "Beta", "gamma"]
#: NO_APP twice: events without an app are counted for it, on no board.
APPS = [NO_APP, "support-bot", "coder:v2", NO_APP, "Z"]
#: Few distinct token counts: ties on every board, and members without tokens.
TOKENS = [0, 1, 2, 2, 5, 10, 10, 100]


def country_of(model: str) -> str:
    """The country every event of ``model`` counts for."""
    return COUNTRIES[sum(map(ord, model)) % len(COUNTRIES)]


def vendor_of(model: str) -> str:
    """The vendor every event of ``model`` counts for."""
    return VENDORS[len(model) % len(VENDORS)]


def app_of(model: str) -> str:
    """The app every event of ``model`` counts for (NO_APP for some)."""
    return APPS[(len(model) + sum(map(ord, model))) % len(APPS)]


@pytest.fixture(autouse=True)
def rank_every_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed week is ranked on every update (the refresh interval is about cost)."""
    monkeypatch.setattr(rank_fields, "RANK_REFRESH_S", 0.0)


@dataclass
class Data:
    """The pipeline's data as the snapshot writers would leave it in Redis."""

    boards: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)

    def add(self, week: str, model: str, tokens: int) -> set[tuple[str, str, str]]:
        """Count one event; returns the (dimension, week, member) cells it changed."""
        cells = {("model", week, model), ("country", week, country_of(model))}
        cells.add(("vendor", week, vendor_of(model)))
        cells.add(("app", week, app_of(model)))
        for dimension, _, member in cells:
            board = self.boards.setdefault((dimension, week), {})
            board[member] = board.get(member, 0) + tokens
        self.totals[week] = self.totals.get(week, 0) + tokens
        return {*cells, ("total", week, "all")}

    def weeks(self) -> list[str]:
        """Weeks with data."""
        return sorted(self.totals)


async def write_cells(
    client: aioredis.Redis, keys: RedisKeys, data: Data, cells: set[tuple[str, str, str]]
) -> None:
    """Write ``cells`` with their current values, as absolute values (snapshot writer)."""
    pipe = client.pipeline(transaction=False)
    for dimension, week, member in sorted(cells):
        if dimension == "total":
            pipe.hset(keys.total(week), mapping={"tokens": data.totals[week], "calls": 1})
            pipe.zadd(keys.weeks, {week: week_start_ms(week)})
            continue
        tokens = data.boards[(dimension, week)][member]
        pipe.hset(keys.member(dimension, week, member), mapping={"tokens": tokens, "calls": 1})
        if (dimension, member) != ("app", NO_APP):  # its hash only, as the snapshot writer
            pipe.zadd(keys.leaderboard(dimension, week), {member: tokens})
    await pipe.execute()


async def full_recompute(client: aioredis.Redis, keys: RedisKeys, weeks: list[str]) -> None:
    """The ranker's rank fields as they were computed before the incremental path: every
    member of a due week rewritten from its whole boards, with redis-py's HSET."""
    names = cast(list[str], await client.zrange(keys.weeks, 0, -1))
    raw = [await client.hget(keys.total(w), "tokens") for w in names]
    totals = {w: int(v) for w, v in zip(names, raw, strict=True) if v is not None}
    for week in weeks:
        prev = previous_week(week)
        cards = [await client.zcard(keys.leaderboard(d, week)) for d in RANKED_DIMENSIONS]
        seen = cast("str | None", await client.hget(keys.ranked, week))
        current = fingerprint(cards, totals, week)
        if not rank_due(seen, current, 0.0, 1e9):
            continue
        complete = True
        for dimension in RANKED_DIMENSIONS:
            rows = await ranking(client, keys, dimension, week)
            previous = await ranking(client, keys, dimension, prev)
            complete = (
                complete
                and adds_up(rows, await on_board(client, keys, dimension, week, totals))
                and adds_up(previous, await on_board(client, keys, dimension, prev, totals))
            )
            before = {r.member: r for r in previous}
            for row in rows:
                await client.hset(
                    keys.member(dimension, week, row.member),
                    mapping=member_fields(row, before.get(row.member)),
                )
        await client.hset(keys.total(week), mapping=total_fields(totals, week))
        await client.hset(keys.ranked, week, current if complete else "")


async def on_board(
    client: aioredis.Redis, keys: RedisKeys, dimension: str, week: str, totals: dict[str, int]
) -> int | None:
    """What a complete board of ``dimension`` holds: the week's total, less the tokens of
    events without an app on the app board."""
    total = totals.get(week)
    if dimension != "app":
        return total
    unranked = await client.hget(keys.member("app", week, NO_APP), "tokens")
    return (total or 0) - int(unranked or 0)


async def ranking(
    client: aioredis.Redis, keys: RedisKeys, dimension: str, week: str
) -> list[Ranked]:
    """The whole ranked board, read as the ranker used to read it."""
    rows = await client.zrange(keys.leaderboard(dimension, week), 0, -1, withscores=True)
    return rank({m: int(s) for m, s in cast(list[tuple[str, float]], rows)})


async def ranker_view(client: aioredis.Redis, keys: RedisKeys) -> dict[str, Any]:
    """Every member and total hash and the fingerprints, keyed without the prefix."""
    view: dict[str, Any] = {}
    for pattern in (keys.member("*", "*", "*"), keys.total("*")):
        async for key in client.scan_iter(match=pattern, count=1000):
            view[key[len(keys.prefix) :]] = await client.hgetall(key)
    view["ranked"] = await client.hgetall(keys.ranked)
    return view


async def delete_prefix(client: aioredis.Redis, keys: RedisKeys) -> None:
    """FLUSHALL of one prefix."""
    doomed = [k async for k in client.scan_iter(match=f"{keys.prefix}:*", count=1000)]
    if doomed:
        await client.delete(*doomed)


async def delete_week(client: aioredis.Redis, keys: RedisKeys, week: str) -> None:
    """What retention does to a week's keys."""
    doomed = [keys.total(week), *(keys.leaderboard(d, week) for d in RANKED_DIMENSIONS)]
    for dimension in RANKED_DIMENSIONS:
        pattern = keys.member(dimension, week, "*")
        doomed += [k async for k in client.scan_iter(match=pattern, count=1000)]
    await client.delete(*doomed)
    await client.zrem(keys.weeks, week)
    await client.hdel(keys.ranked, week)


class FailingWrites:
    """Makes the next write-script call write its batch and then fail, once."""

    def __init__(self, ranks: RankFields) -> None:
        self.armed = False
        self._script = ranks._write_fields
        ranks._write_fields = self  # type: ignore[assignment]

    async def __call__(self, **kwargs: Any) -> Any:
        result = await self._script(**kwargs)
        if self.armed:
            self.armed = False
            raise ConnectionError("injected: connection lost after the write")
        return result


def steps(seed: int, count: int) -> Iterator[tuple[str, random.Random]]:
    """A seeded sequence of step kinds."""
    rng = random.Random(seed)
    kinds = ["events"] * 6 + ["partial", "flush", "other_leader", "fail", "expire", "quiet"]
    for _ in range(count):
        yield rng.choice(kinds), rng


@pytest.mark.parametrize("seed", range(8))
async def test_incremental_rank_fields_equal_a_full_recompute(
    settings: Settings, redis_client: aioredis.Redis, seed: int
) -> None:
    """Random sequences of events (some written in two halves, as two workers' snapshots
    land apart), Redis flushes and rewrites, another leader's writes, a write that fails
    halfway and expired weeks: whenever every write has landed, the rank fields, total
    fields and fingerprints written incrementally are those the full recompute writes."""
    client = redis_client
    inc, ref = RedisKeys(f"{settings.redis_prefix}:inc"), RedisKeys(f"{settings.redis_prefix}:ref")
    leaders = [RankFields(client, inc), RankFields(client, inc)]
    failing = FailingWrites(leaders[0])
    data = Data()
    pending: set[tuple[str, str, str]] = set()
    weeks = list(WEEKS[: 2 + seed % 2])
    compared = 0

    async def write(cells: set[tuple[str, str, str]]) -> None:
        for keys in (inc, ref):
            await write_cells(client, keys, data, cells)

    for step, (kind, rng) in enumerate(steps(seed, 40)):
        if pending:
            await write(pending)
            pending = set()
        if kind in ("events", "partial", "fail"):
            cells: set[tuple[str, str, str]] = set()
            for _ in range(rng.choice([1, 2, 5, 20])):
                week = rng.choice(weeks)
                cells |= data.add(week, rng.choice(MODELS), rng.choice(TOKENS))
            if kind == "partial":
                pending = {c for c in cells if rng.random() < 0.5}
                cells -= pending
            await write(cells)
        elif kind == "flush":
            for keys in (inc, ref):
                await delete_prefix(client, keys)
            every = {(d, w, m) for (d, w), board in data.boards.items() for m in board} | {
                ("total", w, "all") for w in data.totals
            }
            await write(every)
        elif kind == "expire" and len(data.weeks()) > 1:
            gone = data.weeks()[0]
            for keys in (inc, ref):
                await delete_week(client, keys, gone)
            data.totals.pop(gone)
            for key in [k for k in data.boards if k[1] == gone]:
                data.boards.pop(key)
            if gone in weeks and len(weeks) > 1:
                weeks.remove(gone)
            later = [w for w in WEEKS if w > max(weeks)]
            if later:
                weeks.append(later[0])
        ranks = leaders[1] if kind == "other_leader" else leaders[0]
        failing.armed = kind == "fail"
        ranked_weeks = cast(list[str], await client.zrange(inc.weeks, 0, -1))
        try:
            await ranks.update(ranked_weeks, await ranks.totals())
        except ConnectionError:
            assert kind == "fail"
            await ranks.update(ranked_weeks, await ranks.totals())
        failing.armed = False
        await full_recompute(client, ref, ranked_weeks)
        if pending:
            continue  # half of a batch is not in Redis yet: the boards do not add up
        compared += 1
        got, want = await ranker_view(client, inc), await ranker_view(client, ref)
        assert got == want, f"seed {seed}, step {step} ({kind}): {diff(got, want)}"
    assert compared > 20


def diff(got: dict[str, Any], want: dict[str, Any]) -> str:
    """The first few keys whose values differ."""
    keys = sorted(k for k in got.keys() | want.keys() if got.get(k) != want.get(k))
    return "; ".join(f"{k}: {got.get(k)} != {want.get(k)}" for k in keys[:4])


@pytest.mark.parametrize("seed", range(4))
async def test_tops_are_the_head_of_the_full_ranking(
    settings: Settings, redis_client: aioredis.Redis, seed: int
) -> None:
    """The top N script gives the first N rows of rank() over the whole board, ties at the
    cut included, members without tokens left out, whatever N."""
    rng = random.Random(seed)
    keys = RedisKeys(settings.redis_prefix)
    week = "2026-W10"
    for dimension in RANKED_DIMENSIONS:
        members = rng.sample(MODELS, rng.randint(0, len(MODELS)))
        scores = {m: float(rng.choice([0, 1, 3, 3, 3, 7, 7, 2**60])) for m in members}
        if scores:
            await redis_client.zadd(keys.leaderboard(dimension, week), scores)
    ranks = RankFields(redis_client, keys)
    for n in (1, 2, 3, 4, 7, 10, 30, 100):
        tops = await ranks.tops(week, n)
        for dimension in RANKED_DIMENSIONS:
            assert tops[dimension] == (await ranking(redis_client, keys, dimension, week))[:n]


@pytest.mark.parametrize("seed", range(4))
async def test_alert_history_gives_the_alerts_of_read_history(
    settings: Settings, redis_client: aioredis.Redis, seed: int
) -> None:
    """For every week and several N, the closing alerts computed from the slim history equal
    those computed from the read API's full history; a week without data fails alike."""
    rng = random.Random(seed)
    keys = RedisKeys(settings.redis_prefix)
    data = Data()
    weeks = [w for w in WEEKS if rng.random() < 0.85] or WEEKS[:1]
    cells: set[tuple[str, str, str]] = set()
    for week in weeks:
        for model in rng.sample(MODELS, rng.randint(1, len(MODELS))):
            tokens = rng.choice([1, 2, 5, 10, 100, 1000]) * (1 + WEEKS.index(week))
            cells |= data.add(week, model, tokens)
    await write_cells(redis_client, keys, data, cells)
    for week in weeks:
        for model in data.boards.get(("model", week), {}):
            if rng.random() < 0.8:  # some models have no recorded name
                name = {"name": f"{model} in {week}", "vendor": vendor_of(model), "country": "US"}
                await redis_client.hset(keys.member("model", week, model), mapping=name)
    for week in weeks:
        for top_n in (1, 3, 10):
            full = await read_history(redis_client, keys, week)
            slim = await alert_history(redis_client, keys, week, top_n)
            for surge in (10.0, 50.0):
                want = week_alerts(week, *full, top_n=top_n, surge_pct=surge)
                got = week_alerts(week, *slim, top_n=top_n, surge_pct=surge)
                assert got == want, (week, top_n, surge)
    missing = "2026-W01"
    with pytest.raises(WeekNotFound) as full_error:
        await read_history(redis_client, keys, missing)
    with pytest.raises(WeekNotFound) as slim_error:
        await alert_history(redis_client, keys, missing, 10)
    assert str(slim_error.value) == str(full_error.value)
