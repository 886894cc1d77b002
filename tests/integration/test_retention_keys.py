"""Retention deletes a week's Redis keys by name: nothing of another week, nothing left."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from aggregations.totals import NO_APP
from aggregations.weeks import days_of_week
from streams.leader.ranker import Ranker
from streams.leader.state_log import RankerStateLog
from streams.settings import Settings
from streams.store.keys import RedisKeys

OLD, KEPT = "2026-W20", "2026-W21"
#: A model of the kept week whose name holds the expiring week's id.
TRICKY = "acme/m-2026-W20"


async def write_week(client: aioredis.Redis, keys: RedisKeys, week: str, model: str) -> None:
    """A week as the snapshot writers leave it: boards, member hashes, total, daily boards."""
    pipe = client.pipeline(transaction=False)
    pipe.zadd(keys.weeks, {week: 1})
    pipe.hset(keys.total(week), mapping={"tokens": 10})
    members = (("model", model), ("country", "CN"), ("vendor", "Acme"), ("app", "bot"))
    for dimension, member in members:
        pipe.zadd(keys.leaderboard(dimension, week), {member: 10})
        pipe.hset(keys.member(dimension, week, member), mapping={"tokens": 10})
        pipe.set(keys.published(dimension, week), "[]")
    # Events without an app: a hash on no board.
    pipe.hset(keys.member("app", week, NO_APP), mapping={"tokens": 5})
    for day in days_of_week(week):
        for dimension, member in (("model", model), ("country", "CN"), ("app", "bot"),
                                  ("total", "all")):  # fmt: skip
            pipe.zadd(keys.daily(dimension, day), {member: 1})
    await pipe.execute()


async def test_delete_week_removes_exactly_that_weeks_keys(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    """Expiring W20 removes its daily total boards too, and keeps W21's model whose name
    contains "2026-W20" (a `*2026-W20*` scan deleted it, and left tb:day:total behind); its
    app keys go too, the hash of events without an app included."""
    keys = RedisKeys(settings.redis_prefix)
    await write_week(redis_client, keys, OLD, "acme/plain")
    await write_week(redis_client, keys, KEPT, TRICKY)
    before = {k async for k in redis_client.scan_iter(match=f"{keys.prefix}:*")}

    async def publish(topic: str, event: dict[str, Any]) -> None:
        raise AssertionError("deleting a week publishes nothing")

    state_log = RankerStateLog(settings)
    try:
        await Ranker(settings, redis_client, keys, publish, state_log).delete_week(OLD)
    finally:
        await state_log.stop()
    after = {k async for k in redis_client.scan_iter(match=f"{keys.prefix}:*")}

    kept_week = {k for k in before if KEPT in k.replace(TRICKY, "") or k == keys.weeks}
    kept_days = {
        keys.daily(d, day)
        for day in days_of_week(KEPT)
        for d in ("model", "country", "app", "total")
    }
    assert keys.member("model", KEPT, TRICKY) in after
    assert keys.member("app", KEPT, NO_APP) in after
    assert (
        keys.member("app", OLD, NO_APP) in before and keys.member("app", OLD, NO_APP) not in after
    )
    assert keys.leaderboard("app", OLD) in before
    assert after == kept_week | kept_days
    assert await redis_client.zrange(keys.weeks, 0, -1) == [KEPT]
