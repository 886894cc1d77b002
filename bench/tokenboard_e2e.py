"""tokenboard end to end: worker processes over the dataset until Redis reflects all of it.

Each measurement gets a fresh ``TOKENBOARD_APP_ID`` (so fresh consumer groups and Faust
changelog) and ``TOKENBOARD_REDIS_PREFIX``, while the topic prefix stays the dataset's, so
the workers' usage topic *is* the dataset topic. The topics derived from the prefix
(partials, dedup, dead letters, rankings, alerts) are deleted before every run, otherwise a
later run would fold the partials of an earlier one.

The clock starts when the first worker reports consumed events on ``/metrics`` (polled
every 50 ms; the counter moves after a fetched batch is folded, so the start is seen a
fraction of a second late, which flatters tokenboard by well under 1 % at 2M events) and
stops when every ``<redis_prefix>:total:<week>`` holds the expected tokens and every
(week, model) leaderboard score the expected sum.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import redis.asyncio as aioredis

from bench.dataset import Expected
from bench.figures import Profile, Throughput
from bench.kafka_admin import delete_topics_named
from bench.procstats import CpuMeter
from bench.profiling import PySpy
from bench.progress import Progress, say
from bench.redis_check import cell_mismatches, delete_prefix, week_tokens
from bench.workers import BenchWorker
from streams.settings import Settings
from streams.store.keys import RedisKeys

POLL_S = 0.05


def derived_topics(settings: Settings) -> list[str]:
    """Topics a worker creates from the topic prefix, besides the usage topic."""
    return [
        settings.partials_topic,
        settings.dedup_topic,
        settings.dead_letter_topic,
        settings.rankings_topic,
        settings.alerts_topic,
    ]


async def run_tokenboard(
    base: Settings,
    expected: Expected,
    *,
    workers: int,
    run_id: str,
    log_dir: Path,
    timeout_s: float,
    profile_path: Path | None = None,
    max_seconds: float | None = None,
) -> tuple[Throughput, Profile | None]:
    """One measurement with ``workers`` processes; with ``profile_path``, py-spy the first.

    ``max_seconds`` ends the run that long after the first consumed event (for a profile);
    the rate is then the share of the dataset's tokens Redis shows, over that time.
    """
    settings = base.replace(app_id=run_id, redis_prefix=run_id, partitions=expected.partitions)
    name = f"tokenboard, {workers} worker{'s' if workers > 1 else ''}"
    if profile_path is not None:
        name += " (profiled)"
    await delete_topics_named(settings, derived_topics(settings))
    keys = RedisKeys(settings.redis_prefix)
    client = aioredis.from_url(settings.redis_url)
    procs = [BenchWorker(settings, f"{run_id}-w{i}", log_dir) for i in range(workers)]
    spy: PySpy | None = None
    spawned = time.monotonic()
    result = Throughput(name=name, events=0, seconds=0.0, complete=False)
    try:
        for proc in procs:
            proc.start()
        await asyncio.gather(*(p.wait_ready_async() for p in procs))
        if profile_path is not None:
            spy = PySpy(procs[0].pid, profile_path).start()
        cpu = CpuMeter([p.pid for p in procs]).start()
        first: float | None = None
        progress = Progress(name, expected.events)
        total = expected.total_tokens
        deadline = time.monotonic() + timeout_s
        seen = 0
        matched = False
        mismatched = -1
        while True:
            now = time.monotonic()
            if first is None:
                consumed = sum(
                    m.get("tokenboard_events_consumed_total", 0.0)
                    for m in await asyncio.gather(*(p.metrics_async() for p in procs))
                )
                if consumed > 0:
                    first = now
            got = await week_tokens(client, keys, expected.week_tokens)
            seen = sum(got.values())
            progress.update(int(expected.events * seen / total))
            # Week totals first (cheap); then every (week, model) score, which other table
            # partitions may write a snapshot tick later than the totals.
            if got == expected.week_tokens:
                mismatched = await cell_mismatches(client, keys, expected.cell_tokens)
                matched = mismatched == 0
                if matched:
                    break
            if max_seconds is not None and first is not None and now - first > max_seconds:
                result.notes.append(f"stopped {max_seconds:.0f} s after the first event")
                break
            if now > deadline:
                result.error = f"timed out after {timeout_s:.0f} s"
                break
            dead = [p.name for p in procs if not p.alive()]
            if dead:
                result.error = f"worker {dead[0]} exited; see {procs[0].log_path}"
                break
            await asyncio.sleep(POLL_S)
        done = time.monotonic()
        progress.done(int(expected.events * seen / total))
        cpu.stop()
        profile = spy.stop() if spy is not None else None
        start = first if first is not None else done
        result.seconds = done - start
        result.complete = matched and not result.error
        result.events = expected.events if result.complete else int(expected.events * seen / total)
        result.startup_s = start - spawned
        result.cpu_pct = cpu.process_cpu_pct
        result.machine_cpu_pct = cpu.machine_cpu_pct
        result.peak_rss_mib = max(p.peak_rss_mib() for p in procs)
        stats = [await p.metrics_async() for p in procs]
        consumed = sum(m.get("tokenboard_events_consumed_total", 0.0) for m in stats)
        counted = sum(m.get("tokenboard_events_counted_total", 0.0) for m in stats)
        dead_letters = sum(m.get("tokenboard_events_dead_lettered_total", 0.0) for m in stats)
        result.notes.append(
            f"events consumed {consumed:,.0f} (re-reads after rebalances included), "
            f"counted {counted:,.0f}, dead-lettered {dead_letters:,.0f}"
        )
        result.exact = matched
        if mismatched > 0:
            result.notes.append(
                f"week totals exact, but {mismatched} (week, model) scores still differed"
            )
        if profile is not None and first is not None:
            profile.events_per_s = consumed / max(done - first, 1e-9)
        return result, profile
    finally:
        if spy is not None and spy.running:
            spy.stop()
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in procs))
        await delete_prefix(client, settings.redis_prefix)
        await client.aclose()
        say(f"  {name}: {result.rate:,.0f} events/s {result.error}")
