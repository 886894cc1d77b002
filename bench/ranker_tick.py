"""What one ranker tick costs as a week's boards grow, and as a share of them changes.

For each size N, a fresh Redis prefix gets N models of the current week and N of the week
before (with their country, vendor and total aggregates), written by
:class:`~streams.worker.snapshots.SnapshotWriter` exactly as the snapshot job writes them.
The previous week is already closed in the ranker's state, as it is in steady state. Then
:meth:`Ranker.tick` is timed in this process against the real Redis:

- (a) the first tick: every rank field of both weeks is written;
- (b) a tick after 1 % of the current week's models gained tokens, each up to
  :data:`GAIN` of what it had (minutes of a steady week's traffic): they move by a few
  places, and the members they pass move with them. The snapshot writer rewrites those
  model keys and the aggregates they move, as the snapshot job does;
- (c) a tick with nothing changed since the last one.

(b) and (c) are the median of a few rounds. The ranker's at-most-every-5-s refresh of a
changing week is lifted for the measurement (it bounds how often a tick pays (b), not what
it pays). Its publications go to a list and its state topic is kept in memory: Kafka is not
what is measured, and a tick publishes at most the top N's changes.

Run alone: ``python -m bench.ranker_tick --sizes 1000,10000,100000`` (``TOKENBOARD_REDIS_URL``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from aggregations.ranker_state import RankerState, Record, closed_record, finalized_record
from aggregations.totals import TableValue
from aggregations.weeks import WEEK_MS, day_id, previous_week, week_id, week_start_ms
from bench.progress import say
from bench.redis_check import delete_prefix
from streams.leader import rank_fields
from streams.leader.ranker import Ranker
from streams.leader.state_log import RankerStateLog
from streams.settings import Settings
from streams.store.client import connect
from streams.store.keys import RedisKeys
from streams.worker.snapshots import SnapshotWriter

__all__ = ["RankerTick", "main", "render_ranker_ticks", "run_ranker_ticks"]

#: Share of the current week's models that gain tokens before tick (b).
CHANGED_SHARE = 0.01
#: Largest gain of one of them, as a share of its tokens.
GAIN = 0.001
#: Rounds of (b) and (c) per size; their median is reported.
ROUNDS = 3
COUNTRIES = 50
VENDORS = 100


@dataclass
class RankerTick:
    """Tick times of the ranker over one week of ``members`` models plus the week before."""

    members: int
    first_s: float
    changed_s: float
    idle_s: float
    changed_members: int
    #: member hashes the ranker wrote in (a) and in the median round of (b), when it says
    first_written: int | None = None
    changed_written: int | None = None
    #: every round's (b) and (c) time, in order
    changed_rounds: list[float] = field(default_factory=list)
    idle_rounds: list[float] = field(default_factory=list)
    error: str = ""


class MemoryStateLog(RankerStateLog):
    """The ranker's state topic kept in a list: the tick's Kafka round trips are not what
    is measured."""

    def __init__(self, settings: Settings, records: Sequence[Record]) -> None:
        super().__init__(settings)
        self.records: list[Record] = list(records)

    async def load(self) -> RankerState | None:
        """The state of the records put so far (``None`` when there are none)."""
        return RankerState.from_records(self.records) if self.records else None

    async def put(self, records: Sequence[Record]) -> None:
        """Append ``records``."""
        self.records.extend(records)

    async def stop(self) -> None:
        """Nothing to stop."""


def model_id(k: int) -> str:
    """Synthetic model number ``k``."""
    return f"rk-vendor-{k % VENDORS}/model-{k}"


def model_meta(k: int) -> list[str]:
    """Display name, vendor and country of model ``k`` (the table value's ``m``)."""
    return [f"Model {k}", f"Vendor {k % VENDORS}", f"C{k % COUNTRIES:02d}"]


def week_tokens(members: int, rng: random.Random) -> list[int]:
    """Tokens of each model in one week: Zipf-like, with noise so that ranks differ from the
    model numbers and between weeks."""
    return [int(1e12 / (k + 1) ** 1.1 * rng.uniform(0.7, 1.3)) + 1 for k in range(members)]


def table_values(
    week: str, tokens: Sequence[int], ts: int, only: Sequence[int] | None = None
) -> list[tuple[str, TableValue]]:
    """The table values of one week's models (all, or the models ``only``) and of the
    country, vendor and total aggregates they fall into, as the fold leaves them."""
    day = day_id(ts)
    aggregates: dict[str, int] = {}
    for k, t in enumerate(tokens):
        meta = model_meta(k)
        for key in (f"vendor:{week}:{meta[1]}", f"country:{week}:{meta[2]}", f"total:{week}:all"):
            aggregates[key] = aggregates.get(key, 0) + t
    touched = range(len(tokens)) if only is None else only
    moved = {f"total:{week}:all"}
    for k in touched:
        meta = model_meta(k)
        moved |= {f"vendor:{week}:{meta[1]}", f"country:{week}:{meta[2]}"}
    items = [
        (f"model:{week}:{model_id(k)}", _value(tokens[k], ts, day, model_meta(k))) for k in touched
    ]
    items += [(key, _value(aggregates[key], ts, day, None)) for key in sorted(moved)]
    return items


def _value(tokens: int, ts: int, day: str, meta: list[str] | None) -> TableValue:
    counts = [tokens, tokens - tokens // 4, tokens // 4, 1 + tokens % 97, 0]
    value: TableValue = {"c": counts, "d": {day: list(counts)}, "ts": ts}
    if meta is not None:
        value["m"] = meta
    return value


@contextlib.contextmanager
def refresh_lifted() -> Iterator[None]:
    """Let a changing week be ranked on every tick (see the module docstring), and keep
    quiet the ranker's warning that Redis lost its state: a fresh prefix has no mirror."""
    saved = rank_fields.RANK_REFRESH_S
    ranker_log = logging.getLogger("tokenboard.ranker")
    level = ranker_log.level
    rank_fields.RANK_REFRESH_S = 0.0
    ranker_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        rank_fields.RANK_REFRESH_S = saved
        ranker_log.setLevel(level)


async def _timed_tick(ranker: Ranker, now_ms: int) -> tuple[float, int | None]:
    """Seconds of one tick, and the member hashes it wrote (when the ranker says)."""
    started = time.perf_counter()
    await ranker.tick(now_ms)
    seconds = time.perf_counter() - started
    written: int | None = getattr(ranker.ranks, "last_written", None)
    return seconds, written


async def measure(
    base: Settings, prefix: str, members: int, gain: float = GAIN, seed: int = 14
) -> RankerTick:
    """Load one size under ``prefix``, time ticks (a), (b), (c), and delete the prefix."""
    settings = base.replace(redis_prefix=prefix)
    keys = RedisKeys(prefix)
    client = connect(settings)
    raw = aioredis.from_url(settings.redis_url)
    try:
        rng = random.Random(seed)
        now_ms = int(time.time() * 1000)
        current = week_id(now_ms)
        previous = previous_week(current)
        current_ts = max(week_start_ms(current), now_ms - 1000)
        previous_ts = week_start_ms(previous) + WEEK_MS // 2
        writer = SnapshotWriter(raw, keys, "bench-ranker")
        this_week = week_tokens(members, rng)
        await writer.write(table_values(previous, week_tokens(members, rng), previous_ts))
        await writer.write(table_values(current, this_week, current_ts))
        # What a worker records after its full rewrite: every partition's snapshot is there.
        await client.sadd(keys.snapshot_partitions, *range(settings.partitions))
        state_log = MemoryStateLog(settings, [closed_record(previous), finalized_record(previous)])
        published: list[dict[str, Any]] = []

        async def publish(topic: str, event: dict[str, Any]) -> None:
            published.append(event)

        ranker = Ranker(settings, client, keys, publish, state_log)
        with refresh_lifted():
            first, first_written = await _timed_tick(ranker, now_ms)
            changed_rounds: list[tuple[float, int | None]] = []
            idle_rounds: list[float] = []
            changed = max(1, int(members * CHANGED_SHARE))
            for _ in range(ROUNDS):
                picked = rng.sample(range(members), changed)
                for k in picked:
                    this_week[k] += max(1, int(this_week[k] * rng.uniform(0, gain)))
                await writer.write(table_values(current, this_week, current_ts, picked))
                changed_rounds.append(await _timed_tick(ranker, now_ms))
                idle_rounds.append((await _timed_tick(ranker, now_ms))[0])
        median = sorted(changed_rounds, key=lambda r: r[0])[len(changed_rounds) // 2]
        result = RankerTick(
            members=members,
            first_s=first,
            changed_s=median[0],
            idle_s=statistics.median(idle_rounds),
            changed_members=changed,
            first_written=first_written,
            changed_written=median[1],
            changed_rounds=[r[0] for r in changed_rounds],
            idle_rounds=idle_rounds,
        )
        say(
            f"  ranker tick, {members:,} members: first {first:.3f} s, "
            f"{changed:,} changed {result.changed_s:.3f} s "
            f"({_count(result.changed_written)} member hashes written), "
            f"unchanged {result.idle_s:.4f} s"
        )
        return result
    finally:
        await delete_prefix(raw, prefix)
        await raw.aclose()
        await client.aclose()


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def render_ranker_ticks(ticks: Sequence[RankerTick]) -> list[str]:
    """The results as Markdown: what the phase measures, then one row per size."""
    lines = [
        "`Ranker.tick` in-process against Redis, one week of N models (with their country, "
        "vendor and total) plus the closed week before, both written by `SnapshotWriter`: "
        f"(a) the first tick, (b) a tick after {CHANGED_SHARE:.0%} of the week's models "
        f"gained up to {GAIN:.1%} of their tokens (median of {ROUNDS}), (c) a tick with "
        "nothing changed (median). Member hashes written: how many rank fields moved.",
        "",
        "| members | (a) first tick s | (b) 1 % changed s | (c) unchanged s | "
        "member hashes written (a) / (b) | (b) rounds s |",
        "| ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for t in ticks:
        if t.error:
            lines.append(f"| {t.members:,} | error: {t.error} | | | | |")
            continue
        rounds = ", ".join(f"{s:.3f}" for s in t.changed_rounds)
        lines.append(
            f"| {t.members:,} | {t.first_s:.3f} | {t.changed_s:.3f} | {t.idle_s:.4f} | "
            f"{_count(t.first_written)} / {_count(t.changed_written)} | {rounds} |"
        )
    return lines


async def run_ranker_ticks(base: Settings, *, run_id: str, sizes: list[int]) -> list[RankerTick]:
    """Tick times at each size (see the module docstring); a size that fails is recorded
    with its error and the others still run."""
    out: list[RankerTick] = []
    for size in sizes:
        try:
            out.append(await measure(base, f"{run_id}-{size}", size))
        except Exception as exc:  # one size failing must not lose the others
            out.append(RankerTick(size, 0.0, 0.0, 0.0, 0, error=f"{type(exc).__name__}: {exc}"))
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.ranker_tick``: print the tick times of each size."""
    p = argparse.ArgumentParser(prog="python -m bench.ranker_tick", description=__doc__)
    p.add_argument("--sizes", default="1000,10000,100000", help="comma list of member counts")
    p.add_argument("--run-id", default="", help="Redis key prefix stem (default: a fresh one)")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    run_id = args.run_id or "rk" + time.strftime("%Y%m%d%H%M%S")
    ticks = asyncio.run(run_ranker_ticks(Settings.from_env(), run_id=run_id, sizes=sizes))
    print("\n".join(render_ranker_ticks(ticks)))
    return 1 if any(t.error for t in ticks) else 0


if __name__ == "__main__":
    sys.exit(main())
