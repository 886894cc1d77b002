"""The Flink SQL peer's job, run by PyFlink in its own virtualenv (see :mod:`bench.flink_sql`).

``python -m bench.flink_job ...`` starts PyFlink's local mode (a MiniCluster inside the
JVM PyFlink launches), with parallelism 1 (one slot, one task per operator: one
consumer reading all partitions, like one tokenboard worker), declares a Kafka table over
the dataset topic with the JSON format and event time from ``ts``, and collects::

    SELECT window_start, model, SUM(tokens), COUNT(*), MIN(NOW()), MAX(NOW())
    FROM TABLE(TUMBLE(TABLE usage_events, DESCRIPTOR(rowtime), 7 days, offset 4 days))
    GROUP BY window_start, window_end, model

The source is bounded at the offsets the topic had at start-up
(``scan.bounded.mode = latest-offset``), so the job ends after the dataset and its end
of input closes every window. Flink SQL runs in the JVM and Python only collects the
rows, so the child cannot count events as they pass: ``COUNT(*)`` gives the events and,
in streaming mode, ``NOW()`` is evaluated for each row, so the earliest and latest
``NOW()`` over all windows are the wall-clock instants of the first and last event the
aggregation saw. CPU is sampled from ``/proc`` for this process and the JVM.

Only the standard library, :mod:`bench.child` (standard library only) and PyFlink may be
imported here: this module runs in PyFlink's virtualenv, not in the project's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.child import descendant_pids, parent_pid, progress_file, write_result
from bench.procstats import cpu_seconds, machine_busy_seconds

DAY_MS = 86_400_000
#: Flink's tumbling windows are aligned to the epoch, 1970-01-01, a Thursday, like Faust's
#: and Quix's; TUMBLE's offset shifts them by 4 days to Monday 1970-01-05, so each window is
#: an ISO week (see bench.weekly_windows.ISO_WEEK_OFFSET_MS, which the tests tie to this).
TUMBLE_OFFSET_DAYS = 4
#: Each partition is in event-time order, but one reader fetches the 8 partitions in turn
#: and events reach the windows behind the watermark: a 1-minute bound dropped 43 % of a
#: 200,000-event dataset as late. Waiting past the dataset's span keeps the sums exact, as
#: the Bytewax and Quix peers do; the end of the bounded input closes every window anyway
#: (so a run cancelled by its budget has closed none and counts nothing).
WATERMARK_DELAY_DAYS = 35

WINDOW_QUERY = f"""
SELECT
  CAST(window_start AS STRING) AS window_start,
  model,
  SUM(prompt_tokens + completion_tokens) AS tokens,
  COUNT(*) AS events,
  CAST(MIN(NOW()) AS STRING) AS first_seen,
  CAST(MAX(NOW()) AS STRING) AS last_seen
FROM TABLE(TUMBLE(TABLE usage_events, DESCRIPTOR(rowtime),
                  INTERVAL '7' DAY, INTERVAL '{TUMBLE_OFFSET_DAYS}' DAY))
GROUP BY window_start, window_end, model
"""


def source_ddl(topic: str, bootstrap: str, group: str) -> str:
    """The Kafka table over the dataset topic: JSON values, event time from ``ts`` (ms)."""
    return f"""
CREATE TABLE usage_events (
  ts BIGINT,
  model STRING,
  prompt_tokens BIGINT,
  completion_tokens BIGINT,
  rowtime AS TO_TIMESTAMP_LTZ(ts, 3),
  WATERMARK FOR rowtime AS rowtime - INTERVAL '{WATERMARK_DELAY_DAYS}' DAY
) WITH (
  'connector' = 'kafka',
  'topic' = '{topic}',
  'properties.bootstrap.servers' = '{bootstrap}',
  'properties.group.id' = '{group}',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset',
  'format' = 'json'
)
"""


def utc_ms(text: str) -> int:
    """Epoch ms of a Flink ``TIMESTAMP`` cast to string in the UTC session zone."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@dataclass
class Windows:
    """The rows collected so far, reduced to what the result needs."""

    rows: list[tuple[int, str, int]] = field(default_factory=list)
    events: int = 0
    first_ms: int | None = None
    last_ms: int | None = None

    def add(self, start: str, model: str, tokens: int, events: int, first: str, last: str) -> None:
        """Fold one output row of :data:`WINDOW_QUERY`."""
        self.rows.append((utc_ms(start), model, int(tokens)))
        self.events += int(events)
        first_ms, last_ms = utc_ms(first), utc_ms(last)
        self.first_ms = first_ms if self.first_ms is None else min(self.first_ms, first_ms)
        self.last_ms = last_ms if self.last_ms is None else max(self.last_ms, last_ms)


#: (epoch seconds, CPU seconds of this process and the JVM, busy seconds of the machine)
Sample = tuple[float, float, float]


def usage_between(samples: list[Sample], start: float, end: float) -> tuple[float, float]:
    """Process-tree and machine CPU % (of one core) between two epoch instants.

    Uses the last sample at or before ``start`` and the first at or after ``end`` (the
    nearest ones when the span lies outside the samples), so the span measured covers the
    one asked for, rounded out to the sampling interval.
    """
    if len(samples) < 2:
        return 0.0, 0.0
    before = [s for s in samples if s[0] <= start]
    after = [s for s in samples if s[0] >= end]
    s0 = before[-1] if before else samples[0]
    s1 = after[0] if after else samples[-1]
    wall = s1[0] - s0[0]
    if wall <= 0:
        return 0.0, 0.0
    return 100 * (s1[1] - s0[1]) / wall, 100 * (s1[2] - s0[2]) / wall


class CpuSampler(threading.Thread):
    """Samples the CPU time of this process and its children (the JVM) twice a second."""

    def __init__(self, interval_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self._stop_event = threading.Event()

    def sample(self) -> None:
        """Take one sample now."""
        pid = os.getpid()
        cpu = sum(cpu_seconds(p) for p in [pid, *descendant_pids(pid)])
        self.samples.append((time.time(), cpu, machine_busy_seconds()[0]))

    def run(self) -> None:
        """Sample until stopped."""
        while not self._stop_event.wait(self.interval_s):
            self.sample()

    def stop(self) -> None:
        """Take a last sample and end the thread."""
        self._stop_event.set()
        self.sample()


def result(windows: Windows, *, target: int, spawned: float, sampler: CpuSampler) -> dict[str, Any]:
    """The child's JSON result (the fields of :class:`bench.child.SelfTimer`, plus windows)."""
    if windows.first_ms is None or windows.last_ms is None:
        # No window closed (cancelled before the end of the input): nothing was measured.
        return {
            "events": 0,
            "seconds": 0.0,
            "complete": False,
            "startup_s": None,
            "cpu_pct": None,
            "machine_cpu_pct": None,
            "windows": [],
        }
    first, last = windows.first_ms / 1000, windows.last_ms / 1000
    cpu_pct, machine_pct = usage_between(sampler.samples, first, last)
    return {
        "events": windows.events,
        "seconds": last - first,
        "complete": windows.events >= target,
        "startup_s": first - spawned,
        "cpu_pct": cpu_pct,
        "machine_cpu_pct": machine_pct,
        "windows": windows.rows,
    }


def stop_jvm(timeout_s: float = 10.0) -> None:
    """End and reap the JVM PyFlink started (our child process).

    PyFlink keeps no handle on it and the JVM only exits once it notices that this process
    is gone; by then it has been re-parented, and an init that does not reap (as in a
    container) keeps it as a zombie. So this process ends it and waits for it itself.
    """
    children = [p for p in descendant_pids(os.getpid()) if _is_child(p)]
    for pid in children:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.1)


def _is_child(pid: int) -> bool:
    try:
        return parent_pid(Path(f"/proc/{pid}/stat").read_text()) == os.getpid()
    except (OSError, ValueError, IndexError):
        return False


def main(argv: list[str] | None = None) -> None:
    """Child entry point."""
    spawned = time.time()

    def terminated(signum: int, frame: Any) -> None:
        # The parent ends this process when its time is up: take the JVM along.
        stop_jvm(timeout_s=5.0)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    parser = argparse.ArgumentParser(prog="bench.flink_job")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--jar", required=True)
    parser.add_argument("--target", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    sampler = CpuSampler()
    sampler.start()
    try:
        out = run_job(args, spawned, sampler)
    finally:
        # Before the result: the parent ends this process as soon as the result file appears.
        stop_jvm()
    write_result(Path(args.result), out)


def run_job(args: argparse.Namespace, spawned: float, sampler: CpuSampler) -> dict[str, Any]:
    """Submit the query, collect its windows until the end or the budget, give the result."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = t_env.get_config()
    config.set("pipeline.jars", Path(args.jar).resolve().as_uri())
    config.set("parallelism.default", "1")
    config.set("table.exec.resource.default-parallelism", "1")
    # TIMESTAMP_LTZ windows are cut in the session time zone: UTC keeps them on UTC Mondays.
    config.set("table.local-time-zone", "UTC")
    t_env.execute_sql(source_ddl(args.topic, args.bootstrap, args.group))
    submitted = t_env.execute_sql(WINDOW_QUERY)

    # The budget counts from the submission: the first event's instant is only known from
    # the rows, which arrive when windows close. Cancelling ends the collect below.
    budget_spent = threading.Event()

    def cancel() -> None:
        budget_spent.set()
        client = submitted.get_job_client()
        if client is not None:
            with contextlib.suppress(Exception):
                client.cancel()

    watchdog = threading.Timer(args.max_seconds, cancel)
    watchdog.daemon = True
    watchdog.start()
    windows = Windows()
    progress = progress_file(Path(args.result))
    try:
        with submitted.collect() as rows:
            for row in rows:
                windows.add(*row)
                progress.write_text(str(windows.events))
    except Exception:
        if not budget_spent.is_set():
            raise
    watchdog.cancel()
    sampler.stop()
    out = result(windows, target=args.target, spawned=spawned, sampler=sampler)
    if budget_spent.is_set():
        out["note"] = (
            f"cancelled after its {args.max_seconds:.0f} s budget (from submission); "
            "counted: the windows closed by then"
        )
    return out


if __name__ == "__main__":
    main()
