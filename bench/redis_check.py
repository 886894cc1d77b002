"""Reading the pipeline's result back from Redis and comparing it with the expected totals."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import redis.asyncio as aioredis

from streams.store.keys import RedisKeys


async def week_tokens(
    client: aioredis.Redis, keys: RedisKeys, weeks: Iterable[str]
) -> dict[str, int]:
    """``tokens`` of ``<prefix>:total:<week>`` for each week (0 when missing)."""
    weeks = list(weeks)
    pipe = client.pipeline(transaction=False)
    for week in weeks:
        pipe.hget(keys.total(week), "tokens")
    values = await pipe.execute()
    return {w: int(v or 0) for w, v in zip(weeks, values, strict=True)}


async def cell_mismatches(
    client: aioredis.Redis, keys: RedisKeys, expected: Mapping[tuple[str, str], int]
) -> int:
    """How many (week, model) leaderboard scores differ from ``expected``."""
    cells = list(expected)
    bad = 0
    for start in range(0, len(cells), 5000):
        chunk = cells[start : start + 5000]
        pipe = client.pipeline(transaction=False)
        for week, model in chunk:
            pipe.zscore(keys.leaderboard("model", week), model)
        scores = await pipe.execute()
        bad += sum(
            1
            for cell, score in zip(chunk, scores, strict=True)
            if score is None or int(score) != expected[cell]
        )
    return bad


async def delete_prefix(client: aioredis.Redis, prefix: str) -> int:
    """Delete every key under ``<prefix>:``; returns how many."""
    deleted = 0
    batch: list[bytes] = []
    async for key in client.scan_iter(match=f"{prefix}:*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            deleted += await client.delete(*batch)
            batch.clear()
    if batch:
        deleted += await client.delete(*batch)
    return deleted
