"""Read-side queries over the Redis key schema, returning plain JSON-ready dicts.

The CLI views and the HTTP API share these functions, so a number printed by ``tokenboard top``
is the number the API and the dashboard show. Nothing here writes to Redis: even the rolling
board, which Redis could compute with ZUNIONSTORE, is summed in Python because that command
needs a destination key.

Every member is named after its dimension, as in the weekly report: ``model`` (the id),
``country`` (the ISO code), ``vendor`` or ``app``, next to its display ``name``; counts are
``tokens``, ``prompt_tokens``, ``completion_tokens`` and ``calls``, as in the usage event,
with the cost next to them: ``cost_micro_usd`` (null when none of the member's tokens had a
price: unknown, never 0; a lower bound while ``unpriced_tokens`` is above 0) and
``unpriced_tokens``. A member hash written before cost was counted has neither field: all
its tokens are unpriced (aggregations/totals.py).
Boards of a dimension with an unranked member (the app of events without one,
:data:`aggregations.totals.UNRANKED_MEMBERS`) leave it off their rows and give its tokens as
``unranked_tokens``: ``total_tokens`` includes them.

Ranks, previous ranks and week-over-week figures are computed from the weekly sorted sets with
the pure ranking rules rather than read from the rank fields the ranker writes: the sorted
sets are what the snapshot writers update first, so the figures never lag the tokens shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis

from aggregations.catalog import UNKNOWN_COUNTRY, UNKNOWN_VENDOR
from aggregations.errors import InvalidInput
from aggregations.growth import growth_streak, wow_pct
from aggregations.prices import known_cost
from aggregations.rankings import ORDERS, Order, Ranked, rank, rank_of
from aggregations.report import COUNTRY_NAMES, rank_move
from aggregations.totals import (
    NO_APP_NAME,
    RANKED_DIMENSIONS,
    TOTAL_MEMBER,
    UNRANKED_MEMBERS,
    RankedDimension,
)
from aggregations.weeks import day_id, parse_day, parse_week, previous_week
from streams.store.keys import RedisKeys
from streams.store.state import (
    MemberNotFound,
    WeekNotFound,
    match_member,
    read_state,
    resolve_week,
)

__all__ = [
    "DIMENSIONS",
    "ORDERS",
    "Dimension",
    "MemberNotFound",
    "country_shares",
    "history",
    "leaderboard",
    "overview",
    "rolling_leaderboard",
]

Dimension = RankedDimension
DIMENSIONS = RANKED_DIMENSIONS
MAX_ROLLING_DAYS = 31


def check_dimension(dimension: str) -> Dimension:
    """Return ``dimension`` if it is a ranked dimension, else raise InvalidInput."""
    for known in DIMENSIONS:
        if dimension == known:
            return known
    raise InvalidInput(f"unknown dimension {dimension!r}: expected one of {', '.join(DIMENSIONS)}")


def check_order(by: str) -> Order:
    """Return ``by`` if it is what a board can be ranked by, else raise InvalidInput."""
    for known in ORDERS:
        if by == known:
            return known
    raise InvalidInput(f"unknown order {by!r}: expected one of {', '.join(ORDERS)}")


def cost_of(detail: Mapping[str, str], tokens: int) -> tuple[int | None, int]:
    """(cost in micro-dollars or None for unknown, unpriced tokens) of a member or total
    hash holding ``tokens``; a hash written before cost was counted is all unpriced."""
    raw_cost, raw_unpriced = detail.get("cost_micro_usd"), detail.get("unpriced_tokens")
    if raw_cost is None or raw_unpriced is None:
        return known_cost(0, tokens, tokens), tokens
    unpriced = int(raw_unpriced)
    return known_cost(int(raw_cost), unpriced, tokens), unpriced


async def leaderboard(
    client: aioredis.Redis,
    keys: RedisKeys,
    dimension: str,
    week: str,
    n: int | None,
    by: str = "tokens",
) -> dict[str, Any]:
    """The top ``n`` of a dimension in ``week`` (``current``, ``last`` or ``2026-W47``);
    every ranked member when ``n`` is None (exports).

    ``by`` is ``tokens`` (every member with traffic) or ``spend``: the members with a price
    for some of their tokens, by cost (the spend board, ``RedisKeys.spend_board``); ``rank``,
    ``prev_rank`` and ``move`` follow that order. Every row carries its cost, its share of
    the week's known spend (``spend_share_pct``), last week's cost and the spend's WoW; the
    board says how many of its members have no price at all (``unpriced_members``, on no
    spend board) and the week's ``total_cost_micro_usd`` and ``unpriced_tokens``.

    Raises WeekNotFound when the week has no data and ValueError for a bad dimension, order,
    week spelling or ``n``.
    """
    dim = check_dimension(dimension)
    order = check_order(by)
    if n is not None and n < 1:
        raise InvalidInput(f"n must be >= 1, got {n}")
    week_id = await resolve_week(client, keys, week)
    prev = previous_week(week_id)
    unranked = UNRANKED_MEMBERS.get(dim)
    # Whole boards only for the order asked: the other order's figures are read for the
    # rows shown (ZMSCORE), and the spend board's size gives the members without a price.
    by_spend = order == "spend"
    board, other = (keys.spend_board, keys.leaderboard) if by_spend else (
        keys.leaderboard, keys.spend_board,
    )  # fmt: skip
    pipe = client.pipeline(transaction=False)
    pipe.zrange(board(dim, week_id), 0, -1, withscores=True)
    pipe.zrange(board(dim, prev), 0, -1, withscores=True)
    pipe.hgetall(keys.total(week_id))
    pipe.exists(keys.total(prev))
    if by_spend:
        pipe.zcount(keys.leaderboard(dim, week_id), "(0", "+inf")
        pipe.zcard(keys.spend_board(dim, week_id))
        pipe.zcard(keys.leaderboard(dim, prev))
    else:
        pipe.zcard(keys.spend_board(dim, week_id))
    if unranked is not None:
        pipe.hget(keys.member(dim, week_id, unranked), "tokens")
    replies = await pipe.execute()
    current_rows, prev_rows, total, has_prev = replies[:4]
    if by_spend:
        with_tokens, priced, prev_card = replies[4:7]
        unranked_tokens = replies[7:]
    else:
        priced, unranked_tokens = replies[4], replies[5:]
        prev_card = len(prev_rows)
    if not total and not current_rows and not (by_spend and with_tokens):
        raise WeekNotFound(f"no data for {week_id}")
    ranking = rank(_scores(current_rows))
    before = rank(_scores(prev_rows))
    prev_ranks = rank_of(before)
    prev_values = {r.member: r.tokens for r in before}
    top = ranking[:n]
    members = [r.member for r in top]
    details, prev_other = await _member_details(client, keys, dim, week_id, members), {}
    if members:
        scores = await client.zmscore(other(dim, prev), members)
        prev_other = {m: int(s) for m, s in zip(members, scores, strict=True) if s is not None}
    if not by_spend:
        with_tokens = len(ranking)
    prev_tokens, prev_costs = (prev_other, prev_values) if by_spend else (prev_values, prev_other)
    total_tokens = (
        int(total["tokens"]) if total.get("tokens") is not None else sum(r.tokens for r in ranking)
    )
    total_cost, total_unpriced = cost_of(total, total_tokens) if total else (None, total_tokens)
    rows = []
    for row in top:
        detail = details.get(row.member, {})
        tokens = _int(detail.get("tokens")) if by_spend else row.tokens
        cost, unpriced = cost_of(detail, tokens)
        old = prev_tokens.get(row.member)
        old_cost = prev_costs.get(row.member)
        rows.append(
            {
                "rank": row.rank,
                **_labels(dim, row.member, detail),
                "tokens": tokens,
                "prompt_tokens": _int(detail.get("prompt")),
                "completion_tokens": _int(detail.get("completion")),
                "calls": _int(detail.get("calls")),
                "cost_micro_usd": cost,
                "unpriced_tokens": unpriced,
                "share_pct": _share(tokens, total_tokens),
                "spend_share_pct": _share(cost, total_cost),
                "prev_tokens": old,
                "prev_rank": prev_ranks.get(row.member),
                "wow_pct": wow_pct(tokens, old),
                "prev_cost_micro_usd": old_cost,
                "spend_wow_pct": wow_pct(cost, old_cost) if cost is not None else None,
                "move": rank_move(row.rank, prev_ranks.get(row.member)),
            }
        )
    return {
        "dimension": dim,
        "by": order,
        "week": week_id,
        "previous_week": prev,
        # Without last week's data every row would read "new"; views say so once instead.
        "has_previous": bool(has_prev or prev_card),
        "total_tokens": total_tokens,
        **({"unranked_tokens": _int(unranked_tokens[0])} if unranked_tokens else {}),
        "total_cost_micro_usd": total_cost,
        "unpriced_tokens": total_unpriced,
        "ranked": len(ranking),
        # Members with traffic but no price for any of it: on no spend board (every member
        # of a spend board has tokens, so the difference of the sizes counts them).
        "unpriced_members": max(0, with_tokens - priced),
        "rows": rows,
    }


async def history(
    client: aioredis.Redis, keys: RedisKeys, dimension: str, member: str
) -> dict[str, Any]:
    """Weekly series of one member over every week with data, oldest first.

    Weeks in which the member had no traffic are kept with ``tokens`` 0 and ``rank`` null so
    that a chart shows the gap; raises MemberNotFound when it has no traffic in any week.
    Vendors are found whatever their case (``openai`` is ``OpenAI``), as countries are.
    """
    dim = check_dimension(dimension)
    state = await read_state(client, keys)
    pipe = client.pipeline(transaction=False)
    for week in state.weeks:
        pipe.zrange(keys.leaderboard(dim, week), 0, -1, withscores=True)
        pipe.hget(keys.total(week), "tokens")
    results = await pipe.execute()
    boards = [_scores(results[2 * i]) for i in range(len(state.weeks))]
    member = match_member(dim, member, (m for board in boards for m in board))
    series = []
    tokens_by_week: dict[str, int] = {}
    latest_with_data: str | None = None
    for i, week in enumerate(state.weeks):
        ranking = rank(boards[i])
        mine = next((r for r in ranking if r.member == member), None)
        tokens = mine.tokens if mine else 0
        tokens_by_week[week] = tokens
        if mine is not None:
            latest_with_data = week
        before = tokens_by_week.get(previous_week(week))
        series.append(
            {
                "week": week,
                "tokens": tokens,
                "rank": mine.rank if mine else None,
                "ranked": len(ranking),
                "share_pct": _share(tokens, _int(results[2 * i + 1])),
                "prev_tokens": before if before else None,
                "wow_pct": wow_pct(tokens, before if before else None),
            }
        )
    if latest_with_data is None:
        raise MemberNotFound(f"no {dim} {member!r} in any week with data")
    detail = (await _member_details(client, keys, dim, latest_with_data, [member]))[member]
    return {"dimension": dim, **_labels(dim, member, detail), "weeks": series}


async def rolling_leaderboard(
    client: aioredis.Redis,
    keys: RedisKeys,
    dimension: str,
    end_day: str | None = None,
    days: int = 7,
    n: int = 10,
) -> dict[str, Any]:
    """The top ``n`` over the ``days`` UTC days ending at ``end_day`` (default: watermark day).

    Sums the daily sorted sets in Python (read only). Raises WeekNotFound before any data
    arrived and ValueError for a bad dimension, day, ``days`` or ``n``.
    """
    dim = check_dimension(dimension)
    if not 1 <= days <= MAX_ROLLING_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_ROLLING_DAYS}, got {days}")
    if n < 1:
        raise InvalidInput(f"n must be >= 1, got {n}")
    state = await read_state(client, keys)
    if end_day is None:
        if not state.watermark_ms:
            raise WeekNotFound("no data yet: is a worker running, and has anything been produced?")
        end_day = day_id(state.watermark_ms)
    last = parse_day(end_day)
    window = [(last - timedelta(days=back)).isoformat() for back in range(days - 1, -1, -1)]
    pipe = client.pipeline(transaction=False)
    for day in window:
        pipe.zrange(keys.daily(dim, day), 0, -1, withscores=True)
    has_unranked = dim in UNRANKED_MEMBERS
    if has_unranked:
        # Its unranked member is on no daily board: the days' totals hold its tokens too.
        for day in window:
            pipe.zscore(keys.daily("total", day), TOTAL_MEMBER)
    replies = await pipe.execute()
    sums: dict[str, int] = {}
    for rows in replies[: len(window)]:
        for member, tokens in _scores(rows).items():
            sums[member] = sums.get(member, 0) + tokens
    ranking = rank(sums)
    ranked_total = sum(r.tokens for r in ranking)
    total = sum(int(v) for v in replies[len(window) :] if v) if has_unranked else ranked_total
    top = ranking[:n]
    labels = await _latest_labels(client, keys, dim, state.weeks, top)
    return {
        "dimension": dim,
        "from": window[0],
        "to": window[-1],
        "days": days,
        "total_tokens": total,
        **({"unranked_tokens": max(0, total - ranked_total)} if has_unranked else {}),
        "ranked": len(ranking),
        "rows": [
            {
                "rank": r.rank,
                **labels[r.member],
                "tokens": r.tokens,
                "share_pct": _share(r.tokens, total),
            }
            for r in top
        ],
    }


async def country_shares(
    client: aioredis.Redis, keys: RedisKeys, weeks: Sequence[str] | None = None
) -> dict[str, Any]:
    """Tokens per country and week, shaped for a stacked chart.

    ``weeks`` defaults to every week with data. Countries are ordered by their tokens over
    all the weeks, largest first; ``tokens`` holds one value per week in ``weeks`` order.
    """
    if weeks is None:
        weeks = (await read_state(client, keys)).weeks
    for week in weeks:
        parse_week(week)
    pipe = client.pipeline(transaction=False)
    for week in weeks:
        pipe.zrange(keys.leaderboard("country", week), 0, -1, withscores=True)
        pipe.hget(keys.total(week), "tokens")
    results = await pipe.execute()
    per_week = [_scores(results[2 * i]) for i in range(len(weeks))]
    overall: dict[str, int] = {}
    for scores in per_week:
        for country, tokens in scores.items():
            overall[country] = overall.get(country, 0) + tokens
    countries = [r.member for r in rank(overall)]
    return {
        "weeks": list(weeks),
        "totals": [_int(results[2 * i + 1]) for i in range(len(weeks))],
        "countries": [
            {
                "country": code,
                "name": COUNTRY_NAMES.get(code, code),
                "tokens": [scores.get(code, 0) for scores in per_week],
            }
            for code in countries
        ],
    }


async def overview(client: aioredis.Redis, keys: RedisKeys) -> dict[str, Any]:
    """Where the pipeline stands: current week, watermark, weeks and the global total."""
    state = await read_state(client, keys)
    pipe = client.pipeline(transaction=False)
    for week in state.weeks:
        pipe.hget(keys.total(week), "tokens")
    pipe.get(keys.snapshot_at)
    *values, snapshot_at = await pipe.execute()
    totals = {w: int(v) for w, v in zip(state.weeks, values, strict=True) if v is not None}
    current = state.current_week or (state.weeks[-1] if state.weeks else None)
    total: dict[str, Any] | None = None
    if current is not None:
        tokens = totals.get(current, 0)
        before = totals.get(previous_week(current))
        total = {
            "tokens": tokens,
            "prev_tokens": before,
            "wow_pct": wow_pct(tokens, before),
            "growth_streak": growth_streak(totals, current),
        }
    return {
        "current_week": current,
        "last_closed_week": state.last_closed,
        "watermark_ms": state.watermark_ms,
        "snapshot_at_ms": _int(snapshot_at) if snapshot_at is not None else None,
        "weeks": state.weeks,
        "closed_weeks": state.closed,
        "total": total,
    }


# Helpers ----------------------------------------------------------------------------------
async def _member_details(
    client: aioredis.Redis, keys: RedisKeys, dimension: str, week: str, members: Sequence[str]
) -> dict[str, dict[str, str]]:
    pipe = client.pipeline(transaction=False)
    for member in members:
        pipe.hgetall(keys.member(dimension, week, member))
    rows = await pipe.execute()
    return {
        member: {k: v for k, v in row.items()} for member, row in zip(members, rows, strict=True)
    }


async def _latest_labels(
    client: aioredis.Redis,
    keys: RedisKeys,
    dimension: str,
    weeks: Sequence[str],
    rows: Sequence[Ranked],
) -> dict[str, dict[str, str]]:
    """Display labels of members, from the most recent week that recorded them."""
    labels: dict[str, dict[str, str]] = {}
    missing = [r.member for r in rows]
    for week in reversed(weeks):
        if not missing:
            break
        details = await _member_details(client, keys, dimension, week, missing)
        for member, detail in details.items():
            if detail:
                labels[member] = _labels(dimension, member, detail)
        missing = [m for m in missing if m not in labels]
    for member in missing:
        labels[member] = _labels(dimension, member, {})
    return labels


def _labels(dimension: str, member: str, detail: Mapping[str, str]) -> dict[str, str]:
    """The member under its dimension's name (``model``, ``country``, ``vendor`` or ``app``,
    as in the weekly report) and its display ``name``; models also carry their ``vendor``
    and ``country``."""
    if dimension == "model":
        return {
            "model": member,
            "name": detail.get("name") or member,
            "vendor": detail.get("vendor") or UNKNOWN_VENDOR,
            "country": detail.get("country") or UNKNOWN_COUNTRY,
        }
    if dimension == "country":
        return {"country": member, "name": COUNTRY_NAMES.get(member, member)}
    if dimension == "app":
        return {"app": member, "name": member or NO_APP_NAME}
    return {"vendor": member, "name": member}


def _scores(rows: Sequence[tuple[str, float]]) -> dict[str, int]:
    return {member: int(score) for member, score in rows}


def _share(part: int | None, total: int | None) -> float | None:
    return part / total * 100 if part is not None and total is not None and total > 0 else None


def _int(value: bytes | str | None) -> int:
    return int(value) if value else 0
