"""What a week's closing alerts read of Redis, and nothing more.

:func:`aggregations.alerts.week_alerts` looks at every earlier week's total and country
board (growth and leader streaks), but at the model boards of the closing week and the one
before only, and at the display names of those weeks' top N models only. The read API's
:func:`streams.store.state.read_history` reads every model board of 27 weeks and the names
of every model of two: at 10,000 models x 26 weeks, closing each week cost seconds. The
alerts computed from :func:`alert_history` are those computed from ``read_history``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import redis.asyncio as aioredis

from aggregations.rankings import rank
from aggregations.report import ModelMeta, WeekData
from aggregations.weeks import previous_week
from streams.store.keys import RedisKeys
from streams.store.state import history_weeks, require_week

__all__ = ["HISTORY_DEPTH", "alert_history", "named_models"]

#: Weeks of history, as :func:`streams.store.state.read_history` reads them.
HISTORY_DEPTH = 27


def _scores(raw: Sequence[Any]) -> dict[str, int]:
    """``{member: int(score)}`` of a raw ``ZRANGE ... WITHSCORES`` reply, RESP3 or RESP2."""
    if raw and isinstance(raw[0], list | tuple):
        return {m: int(float(s)) for m, s in raw}
    return {m: int(float(s)) for m, s in zip(raw[0::2], raw[1::2], strict=True)}


def named_models(history: dict[str, WeekData], week: str, top_n: int) -> set[str]:
    """The models whose display names :func:`week_alerts` may print: the top N of the week
    and of the week before (its leader and its surges and drops are among them)."""
    named: set[str] = set()
    for w in (week, previous_week(week)):
        if w in history:
            named.update(row.member for row in rank(history[w].models)[:top_n])
    return named


async def alert_history(
    client: aioredis.Redis, keys: RedisKeys, week: str, top_n: int, depth: int = HISTORY_DEPTH
) -> tuple[dict[str, WeekData], dict[str, ModelMeta]]:
    """Up to ``depth`` weeks ending at ``week`` and the model names ``week_alerts`` of
    ``week`` prints; the other weeks' ``models`` are left empty, which it does not read.

    :class:`~streams.store.state.WeekNotFound` when ``week`` has no data, as
    ``read_history``.
    """
    wanted, weeks = await history_weeks(client, keys, week, depth)
    full = {week, previous_week(week)}
    pipe = client.pipeline(transaction=False)
    for w in wanted:
        pipe.hget(keys.total(w), "tokens")
        if w in full:
            # Raw: redis-py's zrange(withscores=True) re-parses every RESP3 score as text.
            pipe.execute_command("ZRANGE", keys.leaderboard("model", w), 0, -1, "WITHSCORES")
        else:
            # Only whether it has members: a week with neither total nor models is skipped.
            pipe.zcard(keys.leaderboard("model", w))
        pipe.execute_command("ZRANGE", keys.leaderboard("country", w), 0, -1, "WITHSCORES")
    results = await pipe.execute()
    history: dict[str, WeekData] = {}
    for i, w in enumerate(wanted):
        total, models, countries = results[3 * i : 3 * i + 3]
        if total is None and not models:
            continue
        history[w] = WeekData(
            week=w,
            total=int(total or 0),
            models=_scores(models) if w in full else {},
            countries=_scores(countries),
        )
    require_week(history, week, weeks)
    named = sorted(named_models(history, week, top_n))
    meta: dict[str, ModelMeta] = {}
    # The previous week first: a name recorded in the week itself wins, as in read_history.
    for w in (previous_week(week), week):
        if w not in history:
            continue
        models = [m for m in named if m in history[w].models]
        pipe = client.pipeline(transaction=False)
        for model in models:
            pipe.hmget(keys.member("model", w, model), ["name", "vendor", "country"])
        rows = cast(list[list[str | None]], await pipe.execute()) if models else []
        for model, (name, vendor, country) in zip(models, rows, strict=True):
            if name is not None:
                meta[model] = ModelMeta(name, cast(str, vendor), cast(str, country))
    return history, meta
