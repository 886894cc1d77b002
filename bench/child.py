"""Running one system under test in its own process and collecting its JSON result.

The child measures itself (its clock starts at its first event) and writes
``{"events", "seconds", "complete", "startup_s", "cpu_pct", "machine_cpu_pct"}`` to the
result file; the parent waits for that file, reads the child's peak RSS, then ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.figures import Throughput
from bench.procstats import cpu_seconds, machine_busy_seconds, peak_rss_mib
from bench.progress import Progress


@dataclass
class SelfTimer:
    """A child's own measurement: wall, CPU and machine CPU from its first event."""

    target: int
    max_seconds: float
    progress_path: Path | None = None
    spawned: float = field(default_factory=time.monotonic)
    count: int = 0
    first: float = 0.0
    cpu0: float = 0.0
    busy0: float = 0.0
    shown: float = 0.0

    def tick(self) -> bool:
        """Count one event; True when the child should write its result and stop."""
        if self.count == 0:
            self.begin()
        self.count += 1
        if self.count % 2000 == 0 and self.progress_path is not None:
            now = time.monotonic()
            if now - self.shown >= 1.0:
                self.shown = now
                self.progress_path.write_text(str(self.count))
        return self.finished()

    def begin(self) -> None:
        """Call at the first event."""
        self.first = time.monotonic()
        self.cpu0 = cpu_seconds(os.getpid())
        self.busy0, _ = machine_busy_seconds()

    def finished(self) -> bool:
        """True once ``target`` events were seen or the time budget is spent."""
        if self.count >= self.target:
            return True
        return self.count % 1000 == 0 and time.monotonic() - self.first > self.max_seconds

    def result(self) -> dict[str, Any]:
        """The JSON result of the child."""
        now = time.monotonic()
        wall = max(now - self.first, 1e-9)
        busy, _ = machine_busy_seconds()
        return {
            "events": self.count,
            "seconds": now - self.first,
            "complete": self.count >= self.target,
            "startup_s": self.first - self.spawned,
            "cpu_pct": 100 * (cpu_seconds(os.getpid()) - self.cpu0) / wall,
            "machine_cpu_pct": 100 * (busy - self.busy0) / wall,
        }

    def write(self, path: Path, extra: dict[str, Any] | None = None) -> None:
        """Write the result atomically (the parent polls for the file)."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self.result(), **(extra or {})}))
        tmp.rename(path)


def progress_file(result_path: Path) -> Path:
    """Where a child writes its running count for the parent's progress line."""
    return result_path.with_suffix(".progress")


async def run_child(
    name: str,
    module: str,
    args: list[str],
    result_path: Path,
    log_path: Path,
    timeout_s: float,
    *,
    target: int,
    notes: list[str] | None = None,
) -> Throughput:
    """Start ``python -m module args``, wait for its result file, end it."""
    result_path.unlink(missing_ok=True)
    progress_path = progress_file(result_path)
    progress_path.unlink(missing_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    progress = Progress(name, target)
    deadline = time.monotonic() + timeout_s
    peak = 0.0
    error = ""
    try:
        while not result_path.exists():
            peak = max(peak, peak_rss_mib(proc.pid))
            if proc.poll() is not None:
                error = f"exited with {proc.returncode} before finishing; see {log_path}"
                break
            if time.monotonic() > deadline:
                error = f"no result within {timeout_s:.0f} s; see {log_path}"
                break
            with contextlib.suppress(OSError, ValueError):
                progress.update(int(progress_path.read_text() or 0))
            await asyncio.sleep(0.2)
        peak = max(peak, peak_rss_mib(proc.pid))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 20)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait, 10)
    if error or not result_path.exists():
        progress.done(0)
        return Throughput(name=name, events=0, seconds=0.0, complete=False, error=error)
    data = json.loads(result_path.read_text())
    progress.done(int(data["events"]))
    result = Throughput(
        name=name,
        events=int(data["events"]),
        seconds=float(data["seconds"]),
        complete=bool(data["complete"]),
        startup_s=float(data["startup_s"]),
        cpu_pct=float(data["cpu_pct"]),
        machine_cpu_pct=float(data["machine_cpu_pct"]),
        peak_rss_mib=peak or None,
        notes=list(notes or []),
    )
    if data.get("note"):
        result.notes.append(str(data["note"]))
    return result
