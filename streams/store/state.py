"""Reads the pipeline's state back from Redis into the pure core's plain values."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from aggregations.errors import NotFound
from aggregations.growth import wow_pct
from aggregations.report import ModelMeta, WeekData
from aggregations.rolling import week_to_date
from aggregations.weeks import days_of_week, parse_week, previous_week, week_id, week_of_day
from streams.store.keys import RedisKeys


@dataclass(frozen=True, slots=True)
class PipelineState:
    """Weeks known to the pipeline and where its event time stands."""

    weeks: list[str]
    closed: list[str]
    watermark_ms: int
    current_week: str | None

    @property
    def last_closed(self) -> str | None:
        """The most recent closed week."""
        return self.closed[-1] if self.closed else None


class WeekNotFound(NotFound):
    """The requested week has no data in Redis."""


class MemberNotFound(NotFound):
    """The requested model, country or vendor has no data in any retained week."""


async def read_state(client: aioredis.Redis, keys: RedisKeys) -> PipelineState:
    """Weeks with data, closed weeks, watermark and current week."""
    pipe = client.pipeline(transaction=False)
    pipe.zrange(keys.weeks, 0, -1)
    pipe.zrange(keys.closed_weeks, 0, -1)
    pipe.get(keys.watermark)
    pipe.get(keys.current_week)
    weeks, closed, watermark, current = await pipe.execute()
    return PipelineState(
        weeks=list(weeks),
        closed=list(closed),
        watermark_ms=int(float(watermark)) if watermark else 0,
        current_week=current or None,
    )


async def resolve_week(client: aioredis.Redis, keys: RedisKeys, spec: str) -> str:
    """Turn ``current``, ``last`` or an explicit ``2026-W47`` into a week id.

    ``current`` is the week of the pipeline's event-time watermark, ``last`` the week before
    it (closed or not): the one definition the CLI, the API and the report share.
    """
    state = await read_state(client, keys)
    if not state.weeks:
        raise WeekNotFound("no data yet: is a worker running, and has anything been produced?")
    # From the watermark itself: the ranker's current-week pointer may lag a tick behind.
    current = week_id(state.watermark_ms) if state.watermark_ms else state.weeks[-1]
    if spec == "current":
        return current
    if spec == "last":
        # The week before the current one, whether or not the ranker closed it yet.
        last = previous_week(current)
        if last not in state.weeks:
            raise WeekNotFound(
                f"no data for {last}, the week before the current week {current} ('last'); "
                f"weeks with data: {_listed(state.weeks)}"
            )
        return last
    parse_week(spec)
    return spec


def _listed(weeks: Sequence[str], most: int = 4) -> str:
    shown = ", ".join(weeks[-most:])
    return shown if len(weeks) <= most else f"... {shown}"


async def read_weeks(
    client: aioredis.Redis, keys: RedisKeys, weeks: Sequence[str]
) -> dict[str, WeekData]:
    """Model, country and total tokens of each week that has data."""
    pipe = client.pipeline(transaction=False)
    for week in weeks:
        pipe.hget(keys.total(week), "tokens")
        pipe.zrange(keys.leaderboard("model", week), 0, -1, withscores=True)
        pipe.zrange(keys.leaderboard("country", week), 0, -1, withscores=True)
    results = await pipe.execute()
    history: dict[str, WeekData] = {}
    for i, week in enumerate(weeks):
        total, models, countries = results[3 * i : 3 * i + 3]
        if total is None and not models:
            continue
        history[week] = WeekData(
            week=week,
            total=int(total or 0),
            models={m: int(s) for m, s in models},
            countries={c: int(s) for c, s in countries},
        )
    return history


async def read_meta(
    client: aioredis.Redis, keys: RedisKeys, week: str, models: Sequence[str]
) -> dict[str, ModelMeta]:
    """Display name, vendor and country of models, as the pipeline recorded them."""
    pipe = client.pipeline(transaction=False)
    for model in models:
        pipe.hmget(keys.member("model", week, model), ["name", "vendor", "country"])
    rows = await pipe.execute()
    meta: dict[str, ModelMeta] = {}
    for model, (name, vendor, country) in zip(models, rows, strict=True):
        if name is not None:
            meta[model] = ModelMeta(name, vendor, country)
    return meta


async def read_spend(client: aioredis.Redis, keys: RedisKeys, data: WeekData) -> WeekData:
    """``data`` with its week's spend: the total's cost and unpriced tokens, and each
    country's. A hash written before cost was counted has no cost fields: its tokens are
    all unpriced (aggregations/totals.py)."""
    fields = ["tokens", "cost_micro_usd", "unpriced_tokens"]
    countries = list(data.countries)
    pipe = client.pipeline(transaction=False)
    pipe.hmget(keys.total(data.week), fields)
    for country in countries:
        pipe.hmget(keys.member("country", data.week, country), fields)
    (_, cost, unpriced), *rows = await pipe.execute()
    spend: dict[str, tuple[int, int]] = {}
    for country, (tokens, country_cost, country_unpriced) in zip(countries, rows, strict=True):
        if country_cost is not None and country_unpriced is not None:
            spend[country] = (int(country_cost), int(country_unpriced))
        else:
            spend[country] = (0, int(tokens or 0))
    return dataclasses.replace(
        data,
        cost=int(cost) if cost is not None and unpriced is not None else 0,
        unpriced=int(unpriced) if cost is not None and unpriced is not None else None,
        country_spend=spend,
    )


async def history_weeks(
    client: aioredis.Redis, keys: RedisKeys, week: str, depth: int
) -> tuple[list[str], list[str]]:
    """(the up to ``depth`` weeks with data ending at ``week``, every week with data)."""
    state = await read_state(client, keys)
    return [w for w in state.weeks if w <= week][-depth:], state.weeks


def require_week(history: dict[str, WeekData], week: str, weeks: Sequence[str]) -> None:
    """:class:`WeekNotFound` when ``week`` is not among the weeks ``history`` read."""
    if week not in history:
        raise WeekNotFound(f"no data for {week} (weeks with data: {', '.join(weeks) or 'none'})")


async def read_history(
    client: aioredis.Redis, keys: RedisKeys, week: str, depth: int = 27
) -> tuple[dict[str, WeekData], dict[str, ModelMeta]]:
    """Up to ``depth`` weeks ending at ``week`` and the metadata of their models; ``week``'s
    own data has its spend (:func:`read_spend`)."""
    wanted, weeks = await history_weeks(client, keys, week, depth)
    history = await read_weeks(client, keys, wanted)
    require_week(history, week, weeks)
    history[week] = await read_spend(client, keys, history[week])
    meta: dict[str, ModelMeta] = {}
    for w in (previous_week(week), week):
        if w in history:
            meta.update(await read_meta(client, keys, w, list(history[w].models)))
    return history, meta


async def daily_tokens(
    client: aioredis.Redis, keys: RedisKeys, dimension: str, member: str, days: Sequence[str]
) -> dict[str, int]:
    """Tokens of one member (``total``/``all`` for the global total) per UTC day."""
    pipe = client.pipeline(transaction=False)
    for day in days:
        pipe.zscore(keys.daily(dimension, day), member)
    scores = await pipe.execute()
    return {day: int(score) for day, score in zip(days, scores, strict=True) if score is not None}


def match_member(dimension: str, member: str, known: Iterable[str]) -> str:
    """How ``member`` is spelled among the ``known`` members of ``dimension``.

    Vendors are found whatever their case (``openai`` finds ``OpenAI``; the exact spelling
    wins when both exist); model ids are exact and country codes are upper-cased by the
    callers. ``member`` comes back unchanged when nothing matches; two spellings that differ
    only in case and neither exact raise :class:`MemberNotFound` naming both.
    """
    if dimension != "vendor":
        return member
    names = set(known)
    if member in names:
        return member
    matches = sorted(name for name in names if name.casefold() == member.casefold())
    if len(matches) > 1:
        spellings = " or ".join(map(repr, matches))
        raise MemberNotFound(f"no vendor {member!r}: did you mean {spellings}?")
    return matches[0] if matches else member


async def week_to_date_tokens(
    client: aioredis.Redis, keys: RedisKeys, dimension: str, member: str, day: str
) -> dict[str, object]:
    """Week-to-date tokens up to ``day`` against last week up to the same weekday; the member
    is named after its dimension (none for ``total``)."""
    this_week = week_of_day(day)
    weeks = (previous_week(this_week), this_week)
    if dimension == "vendor":
        pipe = client.pipeline(transaction=False)
        for week in weeks:
            pipe.zrange(keys.leaderboard(dimension, week), 0, -1)
        known = [name for names in await pipe.execute() for name in names]
        member = match_member(dimension, member, known)
    days = days_of_week(weeks[0]) + days_of_week(weeks[1])
    this, last = week_to_date(await daily_tokens(client, keys, dimension, member, days), day)
    return {
        "dimension": dimension,
        **({dimension: member} if dimension != "total" else {}),
        "week": this_week,
        "day": day,
        "tokens": this,
        "last_week_tokens": last,
        "wow_pct": wow_pct(this, last),
    }
