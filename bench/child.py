"""Running one system under test in its own process and collecting its JSON result.

The child measures itself (its clock starts at its first event) and writes
``{"events", "seconds", "complete", "startup_s", "cpu_pct", "machine_cpu_pct"}`` to the
result file; the parent waits for that file, reads the child's peak RSS, then ends it.
"""

from __future__ import annotations

import asyncio
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


@dataclass
class SelfTimer:
    """A child's own measurement: wall, CPU and machine CPU from its first event."""

    target: int
    max_seconds: float
    spawned: float = field(default_factory=time.monotonic)
    count: int = 0
    first: float = 0.0
    cpu0: float = 0.0
    busy0: float = 0.0

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


async def run_child(
    name: str,
    module: str,
    args: list[str],
    result_path: Path,
    log_path: Path,
    timeout_s: float,
    *,
    notes: list[str] | None = None,
) -> Throughput:
    """Start ``python -m module args``, wait for its result file, end it."""
    result_path.unlink(missing_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=log,
            stderr=None,  # the child's progress line goes to our terminal
            stdin=subprocess.DEVNULL,
        )
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
        return Throughput(name=name, events=0, seconds=0.0, complete=False, error=error)
    data = json.loads(result_path.read_text())
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
