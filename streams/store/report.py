"""The weekly report, read from the pipeline's state in Redis."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from aggregations.report import build_report
from streams.store.keys import RedisKeys
from streams.store.state import read_history, resolve_week


async def weekly_report(
    client: aioredis.Redis, keys: RedisKeys, week_spec: str, top_n: int
) -> dict[str, Any]:
    """The report of a week (``current``, ``last`` or ``2026-W47``) as the JSON contract."""
    week = await resolve_week(client, keys, week_spec)
    history, meta = await read_history(client, keys, week)
    return build_report(week, history, meta, top_n)
