"""The snapshot writer's Redis script writes exactly what the table holds (real Redis)."""

from __future__ import annotations

import redis.asyncio as aioredis

from streams.settings import Settings
from streams.store.keys import RedisKeys
from streams.worker.snapshots import BATCH, SnapshotWriter

BIG = 2**53 + 1  # a double cannot hold it: numbers must not pass through Lua as numbers


async def test_values_land_exactly_in_every_key(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    """Counts beyond 2**53, members with ':' and non-ASCII text, only the changed days,
    and more values than one script call takes."""
    keys = RedisKeys(settings.redis_prefix)
    writer = SnapshotWriter(redis_client, keys, "w-test")
    member = "acme/m:2026-W20 ünï"
    model_value = {
        "c": [BIG, BIG - 1, 2, 7, 1],
        "d": {"2026-11-16": [BIG, BIG - 1, 2, 7, 1], "2026-11-17": [5, 4, 1, 1, 0]},
        "ts": 1763251200000,
        "m": ["Ünï Model", "Acme", "US"],
    }
    total_value = {"c": [10, 8, 2, 3, 0], "d": {"2026-11-16": [10, 8, 2, 3, 0]}, "ts": 1}
    filler = [
        (f"model:2026-W46:filler-{i}", {"c": [i, i, 0, 1, 0], "d": {}, "ts": 1})
        for i in range(BATCH + 10)
    ]
    written = await writer.write(
        [(f"model:2026-W47:{member}", model_value), ("total:2026-W47:all", total_value), *filler],
        changed_days={
            f"model:2026-W47:{member}": {"2026-11-16"},
            "total:2026-W47:all": {"2026-11-16"},
            **{key: set() for key, _ in filler},
        },
    )
    assert written == BATCH + 12
    assert await redis_client.hgetall(keys.member("model", "2026-W47", member)) == {
        "tokens": str(BIG), "prompt": str(BIG - 1), "completion": "2", "calls": "7",
        "late": "1", "name": "Ünï Model", "vendor": "Acme", "country": "US",
    }  # fmt: skip
    assert await redis_client.zscore(keys.leaderboard("model", "2026-W47"), member) == float(BIG)
    assert await redis_client.zscore(keys.daily("model", "2026-11-16"), member) == float(BIG)
    # Only the changed day was written.
    assert await redis_client.zscore(keys.daily("model", "2026-11-17"), member) is None
    assert await redis_client.hgetall(keys.total("2026-W47")) == {
        "tokens": "10", "prompt": "8", "completion": "2", "calls": "3", "late": "0",
    }  # fmt: skip
    assert await redis_client.zscore(keys.daily("total", "2026-11-16"), "all") == 10.0
    assert "2026-W47" in await redis_client.zrange(keys.weeks, 0, -1)
    assert await redis_client.zcard(keys.leaderboard("model", "2026-W46")) == BATCH + 10
    assert await redis_client.hget(keys.member("model", "2026-W46", "filler-2009"), "tokens") == (
        "2009"
    )
