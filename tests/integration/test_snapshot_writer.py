"""The snapshot writer's Redis script writes exactly what the table holds (real Redis)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis
from faust.types import TP

from aggregations.partials import partition_for
from streams.settings import Settings
from streams.store.keys import RedisKeys
from streams.worker.fold import PendingChanges
from streams.worker.snapshot_job import SnapshotJob
from streams.worker.snapshots import BATCH, SnapshotWriter

BIG = 2**53 + 1  # a double cannot hold it: numbers must not pass through Lua as numbers


async def test_values_land_exactly_in_every_key(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    """Counts beyond 2**53, members with ':' and non-ASCII text, only the changed days,
    and more values than one script call takes; cost and unpriced tokens next to the
    tokens, the spend board holding the members with a price and no other, and a value of a
    version without cost read as all unpriced."""
    keys = RedisKeys(settings.redis_prefix)
    writer = SnapshotWriter(redis_client, keys, "w-test")
    member = "acme/m:2026-W20 ünï"
    model_value = {
        "c": [BIG, BIG - 1, 2, 7, 1, BIG + 2, 5],
        "d": {
            "2026-11-16": [BIG, BIG - 1, 2, 7, 1, BIG + 2, 0],
            "2026-11-17": [5, 4, 1, 1, 0, 0, 5],
        },
        "ts": 1763251200000,
        "m": ["Ünï Model", "Acme", "US"],
    }
    total_value = {"c": [10, 8, 2, 3, 0], "d": {"2026-11-16": [10, 8, 2, 3, 0]}, "ts": 1}
    unpriced_value = {"c": [40, 30, 10, 1, 0, 0, 40], "d": {}, "ts": 1, "m": ["U", "V", "CN"]}
    filler = [
        (f"model:2026-W46:filler-{i}", {"c": [i, i, 0, 1, 0], "d": {}, "ts": 1})
        for i in range(BATCH + 10)
    ]
    written = await writer.write(
        [
            (f"model:2026-W47:{member}", model_value),
            ("total:2026-W47:all", total_value),
            ("model:2026-W47:u/unpriced", unpriced_value),
            *filler,
        ],
        changed_days={
            f"model:2026-W47:{member}": {"2026-11-16"},
            "total:2026-W47:all": {"2026-11-16"},
            "model:2026-W47:u/unpriced": set(),
            **{key: set() for key, _ in filler},
        },
    )
    assert written == BATCH + 13
    assert await redis_client.hgetall(keys.member("model", "2026-W47", member)) == {
        "tokens": str(BIG), "prompt": str(BIG - 1), "completion": "2", "calls": "7",
        "late": "1", "cost_micro_usd": str(BIG + 2), "unpriced_tokens": "5",
        "name": "Ünï Model", "vendor": "Acme", "country": "US",
    }  # fmt: skip
    # Priced members are on the spend board by cost; a member without any priced token is
    # not (its cost is unknown, not 0).
    spend = keys.spend_board("model", "2026-W47")
    assert await redis_client.zscore(spend, member) == float(BIG + 2)
    assert await redis_client.zscore(spend, "u/unpriced") is None
    assert await redis_client.hget(keys.member("model", "2026-W47", "u/unpriced"), "tokens") == "40"
    assert await redis_client.zscore(keys.leaderboard("model", "2026-W47"), member) == float(BIG)
    assert await redis_client.zscore(keys.daily("model", "2026-11-16"), member) == float(BIG)
    # Only the changed day was written.
    assert await redis_client.zscore(keys.daily("model", "2026-11-17"), member) is None
    # A value of a version without cost (five counts): every token unpriced.
    assert await redis_client.hgetall(keys.total("2026-W47")) == {
        "tokens": "10", "prompt": "8", "completion": "2", "calls": "3", "late": "0",
        "cost_micro_usd": "0", "unpriced_tokens": "10",
    }  # fmt: skip
    assert await redis_client.zscore(keys.daily("total", "2026-11-16"), "all") == 10.0
    assert "2026-W47" in await redis_client.zrange(keys.weeks, 0, -1)
    assert await redis_client.zcard(keys.leaderboard("model", "2026-W46")) == BATCH + 10
    assert await redis_client.hget(keys.member("model", "2026-W46", "filler-2009"), "tokens") == (
        "2009"
    )


@dataclass
class StandInConsumer:
    """What SnapshotJob reads of Faust's consumer: the assignment."""

    tps: set[TP]

    def assignment(self) -> set[TP]:
        return self.tps


@dataclass
class StandInApp:
    """What SnapshotJob reads of Faust's app."""

    consumer: StandInConsumer
    consumer_generation_id: int = 1
    rebalancing: bool = False
    in_recovery: bool = False


async def test_a_rebalance_that_gives_back_the_same_partitions_rewrites_them(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    """A worker stalled past its session timeout gets its partitions back and recovers newer
    values than it wrote; the previous owner's older snapshot is in Redis, and the recovered
    keys are not among the fold's changes: only a full rewrite puts them back (RELIABILITY.md,
    bug 20)."""
    keys = RedisKeys(settings.redis_prefix)
    key = "total:2026-W46:all"
    week_partition = partition_for(key, settings.partitions)
    app = StandInApp(StandInConsumer({TP(settings.partials_topic, week_partition)}))
    weekly: dict[str, bytes] = {key: orjson.dumps({"c": [100, 90, 10, 4, 0], "d": {}, "ts": 1})}
    job = SnapshotJob(
        app,  # type: ignore[arg-type]
        settings,
        weekly,
        {},
        PendingChanges(),
        redis_client,
        keys,
        "w-rebalance",
    )
    await job.write()
    assert await redis_client.hget(keys.total("2026-W46"), "calls") == "4"

    # Meanwhile another owner wrote an older state; this worker recovers a newer one.
    await redis_client.hset(keys.total("2026-W46"), "calls", "3")
    weekly[key] = orjson.dumps({"c": [150, 135, 15, 6, 0], "d": {}, "ts": 1})
    app.consumer_generation_id = 2
    await job.write()
    assert await redis_client.hget(keys.total("2026-W46"), "calls") == "6"
