"""`last` on real Redis: the week before the current one, or a clear error naming both."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from aggregations.weeks import week_start_ms
from streams.settings import Settings
from streams.store.keys import RedisKeys
from streams.store.state import WeekNotFound, resolve_week


async def test_last_is_the_week_before_current_and_says_so_when_it_has_no_data(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    """With data for W47 and one event in W49, `last` is W48: no data, and the error names
    W48, the current W49 and the weeks that have data; once W48 has data it is W48."""
    keys = RedisKeys(settings.redis_prefix)
    await redis_client.zadd(keys.weeks, {"2026-W47": 1, "2026-W49": 2})
    await redis_client.set(keys.watermark, week_start_ms("2026-W49") + 1000)
    assert await resolve_week(redis_client, keys, "current") == "2026-W49"
    with pytest.raises(WeekNotFound) as error:
        await resolve_week(redis_client, keys, "last")
    message = str(error.value)
    assert "2026-W48" in message and "current week 2026-W49" in message and "2026-W47" in message
    await redis_client.zadd(keys.weeks, {"2026-W48": 3})
    assert await resolve_week(redis_client, keys, "last") == "2026-W48"
