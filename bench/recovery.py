"""Table recovery: how long the pipeline takes to count again after a worker is SIGKILLed,
as the table grows (``--sizes``, default 1,000 / 10,000 / 100,000 table keys), with and
without Faust standby replicas (``--standby``, ``TOKENBOARD_STANDBY_REPLICAS``).

Two scenarios (``--scenarios``), each size on a fresh prefix. The table is filled with one
small event per model of the current week until Redis shows the week's total (it then
holds ``size`` keys: models, their vendors, one country and the total).

*new-worker*: one worker holds the table. It is SIGKILLed; a new one is started at once
and one more event is produced. Measured from the new worker's start:

- *ready*: ``/readyz`` answers 200 (stage 1 joined its group);
- *counting*: Redis shows the week's total with the new event, which stage 2 can only fold
  after it recovered the table from the changelog. It includes the group's session timeout
  (20 s): the killed worker's membership must expire before its partitions move;
- *restore*: Faust's own recovery, from its "Highwater for active changelog partitions" to
  its "Recovery complete" log line (the changelog read alone).

A standby lives in another *running* worker, so here it has nothing to take over from.

*takeover*: two workers share the table (both with the same standby setting). The one that
owns the partition of the week's total is SIGKILLed and one more event is produced;
measured from the kill, *counting* is the time until the survivor has that event in Redis
(again with the 20 s session timeout), *restore* the survivor's recovery of the partitions
it took over, from its log. With a standby replica the survivor already read those
changelog partitions before the kill.

Run alone (against the ``TOKENBOARD_*`` stack)::

    python -m bench.recovery --sizes 1000,10000 --scenarios new-worker,takeover --standby 0,1
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from aggregations.partials import partition_for
from aggregations.weeks import week_id
from bench.memory import VENDORS, _produce_cells, week_times
from bench.progress import say
from bench.redis_check import delete_prefix, week_tokens
from streams.dev.workerproc import WorkerProcess
from streams.settings import Settings
from streams.store.keys import RedisKeys
from streams.topics import (
    WEEKLY_TABLE,
    changelog_topic,
    delete_topics_with_prefix,
    ensure_topics,
)

#: Table keys beside the models': one per vendor, the one country of the synthetic models
#: (unknown to the catalog), and the week's total.
FIXED_KEYS = VENDORS + 2
FILL_TIMEOUT_S = 900.0
RECOVERY_TIMEOUT_S = 600.0
#: How long the two workers of a takeover get to settle on disjoint partitions.
ASSIGNMENT_TIMEOUT_S = 180.0
SCENARIOS = ("new-worker", "takeover")
_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
#: Faust repeats a topic name in its log tables as a ditto mark.
_DITTO = "\u3003"


@dataclass
class Recovery:
    """One size of one scenario: the times after a worker was SIGKILLed."""

    table_keys: int
    standby_replicas: int
    scenario: str = "new-worker"
    fill_s: float = 0.0
    ready_s: float | None = None
    counting_s: float | None = None
    restore_s: float | None = None
    exact: bool | None = None
    error: str = ""


@dataclass
class RecoveryResults:
    """Every size measured, with notes on what could not be."""

    runs: list[Recovery] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def restore_seconds(log_text: str) -> float | None:
    """Seconds of Faust's last table restore in a worker log at INFO (None: not found)."""
    began: datetime | None = None
    took: float | None = None
    for line in log_text.splitlines():
        stamp = _LOG_TIME.match(line)
        if stamp is None:
            continue
        at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f")
        if "Highwater for active changelog partitions" in line:
            began = at
        elif "Recovery complete" in line and began is not None:
            took, began = (at - began).total_seconds(), None
    return took


def active_changelog_partitions(log_text: str, topic: str) -> set[int] | None:
    """The partitions of changelog ``topic`` in the last "Highwater for active changelog
    partitions" table of a worker log at INFO: the table partitions it owned after its last
    rebalance (None: no such table yet)."""
    lines = log_text.splitlines()
    starts = [i for i, line in enumerate(lines) if "Highwater for active changelog" in line]
    if not starts:
        return None
    owned: set[int] = set()
    current = ""
    for line in lines[starts[-1] + 1 :]:
        if _LOG_TIME.match(line):
            break  # the next log record
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[1].isdigit():
            continue  # borders and the header
        current = current if cells[0] == _DITTO else cells[0]
        if current == topic:
            owned.add(int(cells[1]))
    return owned


def settled_owner(
    owned: Mapping[str, set[int] | None], partitions: int, partition: int
) -> str | None:
    """The worker owning ``partition`` once the workers' partitions are disjoint and cover
    all ``partitions`` (None while a rebalance is still settling)."""
    if any(parts is None for parts in owned.values()):
        return None
    sets = [parts for parts in owned.values() if parts is not None]
    if sum(len(parts) for parts in sets) != partitions or set().union(*sets) != set(
        range(partitions)
    ):
        return None
    return next(name for name, parts in owned.items() if parts and partition in parts)


async def _send_marker(settings: Settings, week_ms: int, tokens: int) -> None:
    producer = AIOKafkaProducer(**settings.kafka_client_options(), acks="all")
    await producer.start()
    try:
        value = orjson.dumps(
            {
                "event_id": f"{settings.topic_prefix}-marker",
                "ts": week_ms,
                "model": "recovery-bench/marker",
                "prompt_tokens": tokens,
                "completion_tokens": 0,
            }
        )
        await producer.send_and_wait(
            settings.usage_topic, value=value, key=f"{settings.topic_prefix}-marker".encode()
        )
    finally:
        await producer.stop()


async def _wait_tokens(
    client: aioredis.Redis, keys: RedisKeys, week: str, tokens: int, worker: WorkerProcess
) -> float:
    started = time.monotonic()
    deadline = started + RECOVERY_TIMEOUT_S
    while True:
        if (await week_tokens(client, keys, [week]))[week] == tokens:
            return time.monotonic() - started
        if not worker.alive():
            raise RuntimeError(f"worker {worker.name} exited; see {worker.log_path}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"Redis not at {tokens:,} tokens after {RECOVERY_TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.1)


async def measure_size(
    base: Settings, *, run_id: str, table_keys: int, log_dir: Path, standby: int = 0
) -> Recovery:
    """Fill one worker's table with ``table_keys`` keys, SIGKILL it, time its successor."""
    settings = base.replace(
        topic_prefix=run_id, app_id=run_id, redis_prefix=run_id, standby_replicas=standby
    )
    models = max(1, table_keys - FIXED_KEYS)
    result = Recovery(table_keys=models + FIXED_KEYS, standby_replicas=standby)
    await ensure_topics(settings)
    keys = RedisKeys(settings.redis_prefix)
    client = aioredis.from_url(settings.redis_url)
    old = WorkerProcess(settings, f"{run_id}-old", log_dir / f"{run_id}-old.log", loglevel="info")
    new = WorkerProcess(settings, f"{run_id}-new", log_dir / f"{run_id}-new.log", loglevel="info")
    try:
        old.start()
        await old.wait_ready_async()
        started = time.monotonic()
        times = week_times(1, int(time.time() * 1000))
        week_totals, _ = await _produce_cells(settings, models, times)
        (week, total), *_ = week_totals.items()
        await _wait_tokens(client, keys, week, total, old)
        result.fill_s = time.monotonic() - started
        await asyncio.sleep(2)  # the last changelog writes of the fold, acknowledged
        old.kill()
        born = time.monotonic()
        new.start()
        marker = 1_000_003
        await _send_marker(settings, times[0], marker)
        await new.wait_ready_async(RECOVERY_TIMEOUT_S)
        result.ready_s = time.monotonic() - born
        await _wait_tokens(client, keys, week, total + marker, new)
        result.counting_s = time.monotonic() - born
        result.exact = True
        result.restore_s = restore_seconds(new.log_path.read_text(errors="replace"))
        say(
            f"  recovery of {result.table_keys:,} keys (standby {standby}): ready "
            f"{result.ready_s:.1f} s, counting {result.counting_s:.1f} s, restore "
            f"{result.restore_s or 0:.2f} s"
        )
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        await asyncio.to_thread(old.stop)
        await asyncio.to_thread(new.stop)
        await delete_prefix(client, settings.redis_prefix)
        await client.aclose()
        await delete_topics_with_prefix(settings, run_id)
    return result


async def _owner_once_settled(
    workers: Sequence[WorkerProcess], topic: str, partitions: int, partition: int
) -> str:
    """The name of the worker owning ``partition`` of ``topic``, once the assignment settled."""
    deadline = time.monotonic() + ASSIGNMENT_TIMEOUT_S
    while True:
        owned = {
            w.name: active_changelog_partitions(w.log_path.read_text(errors="replace"), topic)
            for w in workers
        }
        owner = settled_owner(owned, partitions, partition)
        if owner is not None:
            return owner
        for w in workers:
            if not w.alive():
                raise RuntimeError(f"worker {w.name} exited; see {w.log_path}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no settled assignment after {ASSIGNMENT_TIMEOUT_S:.0f} s: {owned}")
        await asyncio.sleep(0.5)


async def measure_takeover(
    base: Settings, *, run_id: str, table_keys: int, log_dir: Path, standby: int
) -> Recovery:
    """Fill two workers' table with ``table_keys`` keys, SIGKILL the owner of the week's total,
    time the survivor's takeover."""
    settings = base.replace(
        topic_prefix=run_id, app_id=run_id, redis_prefix=run_id, standby_replicas=standby
    )
    models = max(1, table_keys - FIXED_KEYS)
    result = Recovery(table_keys=models + FIXED_KEYS, standby_replicas=standby, scenario="takeover")
    await ensure_topics(settings)
    keys = RedisKeys(settings.redis_prefix)
    client = aioredis.from_url(settings.redis_url)
    workers = [
        WorkerProcess(settings, f"{run_id}-{n}", log_dir / f"{run_id}-{n}.log", loglevel="info")
        for n in ("a", "b")
    ]
    topic = changelog_topic(settings, WEEKLY_TABLE)
    try:
        for w in workers:
            w.start()
        for w in workers:
            await w.wait_ready_async()
        times = week_times(1, int(time.time() * 1000))
        week = week_id(times[0])
        total_partition = partition_for(f"total:{week}:all", settings.partitions)
        await _owner_once_settled(workers, topic, settings.partitions, total_partition)
        started = time.monotonic()
        week_totals, _ = await _produce_cells(settings, models, times)
        total = week_totals[week]
        await _wait_tokens(client, keys, week, total, workers[0])
        result.fill_s = time.monotonic() - started
        # The last changelog writes acknowledged, and a standby caught up with them.
        await asyncio.sleep(5)
        owner = await _owner_once_settled(workers, topic, settings.partitions, total_partition)
        victim = next(w for w in workers if w.name == owner)
        survivor = next(w for w in workers if w.name != owner)
        log_before = len(survivor.log_path.read_text(errors="replace"))
        victim.kill()
        killed = time.monotonic()
        marker = 1_000_003
        await _send_marker(settings, times[0], marker)
        await _wait_tokens(client, keys, week, total + marker, survivor)
        result.counting_s = time.monotonic() - killed
        result.exact = True
        result.restore_s = restore_seconds(
            survivor.log_path.read_text(errors="replace")[log_before:]
        )
        say(
            f"  takeover of {result.table_keys:,} keys (standby {standby}): counting "
            f"{result.counting_s:.1f} s, restore {result.restore_s or 0:.2f} s"
        )
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        for w in workers:
            await asyncio.to_thread(w.stop)
        await delete_prefix(client, settings.redis_prefix)
        await client.aclose()
        await delete_topics_with_prefix(settings, run_id)
    return result


async def run_recovery(
    base: Settings,
    *,
    run_id: str,
    log_dir: Path,
    sizes: list[int],
    scenarios: Sequence[str] = ("new-worker",),
    standby: Sequence[int] | None = None,
) -> RecoveryResults:
    """Every scenario, standby setting (default: the settings' own) and size in turn, each on
    its own prefix; a failing run is reported, not raised."""
    results = RecoveryResults()
    for scenario in scenarios:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}: one of {', '.join(SCENARIOS)}")
    for scenario in scenarios:
        measure = measure_takeover if scenario == "takeover" else measure_size
        tag = "t" if scenario == "takeover" else "n"
        for replicas in [base.standby_replicas] if standby is None else standby:
            for size in sizes:
                run = await measure(
                    base,
                    run_id=f"{run_id}-{tag}{replicas}-{size}",
                    table_keys=size,
                    log_dir=log_dir,
                    standby=replicas,
                )
                results.runs.append(run)
    return results


def render_recovery(results: RecoveryResults) -> list[str]:
    """The phase's section of RESULTS.md."""
    lines = [
        "The table holds one event per model of the current week. *new-worker*: its one "
        "worker is SIGKILLed and a new worker is started at once; one more event is produced; "
        "*counting* runs from the new worker's start. *takeover*: two workers share the table "
        "and the one owning the week's total is SIGKILLed; one more event is produced; "
        "*counting* runs from the kill until the survivor has it in Redis. *counting* includes "
        "the group's 20 s session timeout before the killed member's partitions move; "
        "*restore* is Faust's changelog read alone, from the log of the worker that took over "
        "(`bench/recovery.py`).",
        "",
        "| scenario | table keys | standby replicas | fill s | ready s | counting s | restore s "
        "| exact |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]

    def num(value: float | None) -> str:
        return "–" if value is None else f"{value:,.1f}"

    for r in results.runs:
        exact = "–" if r.exact is None else ("yes" if r.exact else "**no**")
        restore = "–" if r.restore_s is None else f"{r.restore_s:,.2f}"
        lines.append(
            f"| {r.scenario} | {r.table_keys:,} | {r.standby_replicas} | {num(r.fill_s)} | "
            f"{num(r.ready_s)} | {num(r.counting_s)} | {restore} | {exact} |"
        )
    errors = [
        f"- {r.scenario}, {r.table_keys:,} keys, standby {r.standby_replicas}: {r.error}"
        for r in results.runs
        if r.error
    ]
    return [*lines, "", *errors, *[f"- {note}" for note in results.notes]]


def main(argv: list[str] | None = None) -> int:
    """Stand-alone run: the table on stdout."""
    parser = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000", help="table keys, comma list")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma list of {', '.join(SCENARIOS)}"
    )
    parser.add_argument(
        "--standby",
        default="0,1",
        help="standby replicas (TOKENBOARD_STANDBY_REPLICAS), comma list",
    )
    parser.add_argument("--log-dir", default=str(Path(__file__).parent / "data" / "logs"))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}: one of {', '.join(SCENARIOS)}")
    standby = [int(s) for s in args.standby.split(",") if s.strip()]
    run_id = "recov" + datetime.now().strftime("%Y%m%d%H%M%S")
    results = asyncio.run(
        run_recovery(
            Settings.from_env(),
            run_id=run_id,
            log_dir=Path(args.log_dir),
            sizes=sizes,
            scenarios=scenarios,
            standby=standby,
        )
    )
    print("\n".join(render_recovery(results)))
    return 1 if any(r.error for r in results.runs) else 0


if __name__ == "__main__":
    sys.exit(main())
