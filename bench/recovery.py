"""Table recovery: how long a new worker takes to count again after the old one is SIGKILLed,
as the table grows (``--recovery-sizes``, default 1,000 / 10,000 / 100,000 table keys).

For each size, on a fresh prefix: one worker folds one small event per model of the current
week until Redis shows the week's total (the table then holds ``size`` keys: models, their
vendors, one country and the total). The worker is SIGKILLed; a new one is started at once
and one more event is produced. Measured from the new worker's start:

- *ready*: ``/readyz`` answers 200 (stage 1 joined its group);
- *counting*: Redis shows the week's total with the new event, which stage 2 can only fold
  after it recovered the table from the changelog. It includes the group's session timeout
  (20 s): the killed worker's membership must expire before its partitions move;
- *restore*: Faust's own recovery, from its "Highwater for active changelog partitions" to
  its "Recovery complete" log line (the changelog read alone).

Standby replicas: the worker's Faust app sets ``table_standby_replicas=0`` in
``streams/worker/faust_app.py`` and no ``TOKENBOARD_*`` setting changes it, so only that
setting is measured. (A standby lives in another *running* worker; with one worker killed
and a new one started there is none to take over from anyway.)

Run alone (against the ``TOKENBOARD_*`` stack)::

    python -m bench.recovery --sizes 1000,10000
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from bench.memory import VENDORS, _produce_cells, week_times
from bench.progress import say
from bench.redis_check import delete_prefix, week_tokens
from streams.dev.workerproc import WorkerProcess
from streams.settings import Settings
from streams.store.keys import RedisKeys
from streams.topics import delete_topics_with_prefix, ensure_topics

#: Table keys beside the models': one per vendor, the one country of the synthetic models
#: (unknown to the catalog), and the week's total.
FIXED_KEYS = VENDORS + 2
FILL_TIMEOUT_S = 900.0
RECOVERY_TIMEOUT_S = 600.0
_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


@dataclass
class Recovery:
    """One size: the new worker's times after the old one was SIGKILLed."""

    table_keys: int
    standby_replicas: int
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


async def measure_size(base: Settings, *, run_id: str, table_keys: int, log_dir: Path) -> Recovery:
    """Fill one worker's table with ``table_keys`` keys, SIGKILL it, time its successor."""
    settings = base.replace(topic_prefix=run_id, app_id=run_id, redis_prefix=run_id)
    models = max(1, table_keys - FIXED_KEYS)
    result = Recovery(table_keys=models + FIXED_KEYS, standby_replicas=0)
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
            f"  recovery of {result.table_keys:,} keys: ready {result.ready_s:.1f} s, counting "
            f"{result.counting_s:.1f} s, restore {result.restore_s or 0:.2f} s"
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


async def run_recovery(
    base: Settings, *, run_id: str, log_dir: Path, sizes: list[int]
) -> RecoveryResults:
    """Every size in turn (each on its own prefix); a failing size is reported, not raised."""
    results = RecoveryResults()
    results.notes.append(
        "Standby replicas: `streams/worker/faust_app.py` sets `table_standby_replicas=0` and no "
        "TOKENBOARD_* setting changes it, so only 0 was measured."
    )
    for size in sizes:
        run = await measure_size(base, run_id=f"{run_id}-{size}", table_keys=size, log_dir=log_dir)
        results.runs.append(run)
    return results


def render_recovery(results: RecoveryResults) -> list[str]:
    """The phase's section of RESULTS.md."""
    lines = [
        "One worker holds the table (one event per model of the current week), is SIGKILLed, "
        "and a new worker is started at once; one more event is produced. *counting* is the "
        "time from the new worker's start until Redis shows that event (it includes the "
        "group's 20 s session timeout before the killed member's partitions move); "
        "*restore* is Faust's changelog read alone, from its log (`bench/recovery.py`).",
        "",
        "| table keys | standby replicas | fill s | ready s | counting s | restore s | exact |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results.runs:

        def num(value: float | None) -> str:
            return "–" if value is None else f"{value:,.1f}"

        exact = "–" if r.exact is None else ("yes" if r.exact else "**no**")
        restore = "–" if r.restore_s is None else f"{r.restore_s:,.2f}"
        lines.append(
            f"| {r.table_keys:,} | {r.standby_replicas} | {num(r.fill_s)} | {num(r.ready_s)} | "
            f"{num(r.counting_s)} | {restore} | {exact} |"
        )
    errors = [f"- {r.table_keys:,} keys: {r.error}" for r in results.runs if r.error]
    return [*lines, "", *errors, *[f"- {note}" for note in results.notes]]


def main(argv: list[str] | None = None) -> int:
    """Stand-alone run: the table on stdout."""
    parser = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000", help="table keys, comma list")
    parser.add_argument("--log-dir", default=str(Path(__file__).parent / "data" / "logs"))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    run_id = "recov" + datetime.now().strftime("%Y%m%d%H%M%S")
    results = asyncio.run(
        run_recovery(Settings.from_env(), run_id=run_id, log_dir=Path(args.log_dir), sizes=sizes)
    )
    print("\n".join(render_recovery(results)))
    return 1 if any(r.error for r in results.runs) else 0


if __name__ == "__main__":
    sys.exit(main())
