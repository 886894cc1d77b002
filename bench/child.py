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
        write_result(path, {**self.result(), **(extra or {})})


def write_result(path: Path, data: dict[str, Any]) -> None:
    """Write a child's JSON result atomically: the parent polls for the file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.rename(path)


def parent_pid(stat: str) -> int:
    """The parent pid in the text of ``/proc/<pid>/stat``."""
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def descendant_pids(pid: int) -> list[int]:
    """Every living process below ``pid`` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = parent_pid((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        below = children.get(todo.pop(), [])
        out += below
        todo += below
    return out


def _started(pid: int) -> str:
    """The start time field of ``/proc/<pid>/stat`` ("" when gone): a pid's identity."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2 :].split()[19]


def last_error_line(log_path: Path) -> str:
    """The last line of a child's log that looks like an error, for the results row."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()[-200:]
    except OSError:
        return ""
    found = [
        line.strip()
        for line in lines
        if "Error" in line or "Exception" in line or line.lower().startswith("error")
    ]
    return found[-1][:500] if found else ""


def _figure(value: Any) -> float | None:
    # null: a child that measured nothing (a cancelled Flink job) says so, rather than 0.
    return None if value is None else float(value)


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
    python: str | None = None,
    env: dict[str, str] | None = None,
    with_descendants: bool = False,
) -> Throughput:
    """Start ``python -m module args``, wait for its result file, end it.

    ``python`` is another interpreter than this one (a peer in its own virtualenv) and
    ``env`` the environment added for it. ``with_descendants`` adds the peak RSS of the
    child's own children (a JVM) to its own: the sum of peaks, an upper bound.
    """
    result_path.unlink(missing_ok=True)
    progress_path = progress_file(result_path)
    progress_path.unlink(missing_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [python or sys.executable, "-m", module, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env} if env else None,
        )
    progress = Progress(name, target)
    deadline = time.monotonic() + timeout_s
    peak = 0.0
    error = ""

    def rss() -> float:
        pids = [proc.pid, *(descendant_pids(proc.pid) if with_descendants else [])]
        return sum(peak_rss_mib(p) for p in pids)

    try:
        while not result_path.exists():
            peak = max(peak, rss())
            if proc.poll() is not None:
                why = last_error_line(log_path)
                error = (
                    f"exited with {proc.returncode} before finishing"
                    f"{': ' + why if why else ''}; see {log_path}"
                )
                break
            if time.monotonic() > deadline:
                error = f"no result within {timeout_s:.0f} s; see {log_path}"
                break
            with contextlib.suppress(OSError, ValueError):
                progress.update(int(progress_path.read_text() or 0))
            await asyncio.sleep(0.2)
        peak = max(peak, rss())
    finally:
        # Taken before the child ends: its orphans would be re-parented out of reach.
        below = [(p, _started(p)) for p in descendant_pids(proc.pid)] if with_descendants else []
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 20)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait, 10)
        for pid, started in below:
            if started and _started(pid) == started:  # still that process, not a reused pid
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
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
        startup_s=_figure(data["startup_s"]),
        cpu_pct=_figure(data["cpu_pct"]),
        machine_cpu_pct=_figure(data["machine_cpu_pct"]),
        peak_rss_mib=peak or None,
        notes=list(notes or []),
    )
    if data.get("note"):
        result.notes.append(str(data["note"]))
    return result
