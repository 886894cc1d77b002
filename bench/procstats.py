"""Process and machine figures read from ``/proc`` (Linux): RSS, CPU time, cores, memory."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _status_kib(pid: int, field: str) -> int:
    """A ``VmXxx:`` line of ``/proc/<pid>/status`` in KiB (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return 0


def rss_mib(pid: int) -> float:
    """Current resident set size of ``pid`` in MiB."""
    return _status_kib(pid, "VmRSS") / 1024


def peak_rss_mib(pid: int) -> float:
    """Peak resident set size (``VmHWM``) of ``pid`` in MiB."""
    return _status_kib(pid, "VmHWM") / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds consumed so far by every thread of ``pid``."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_busy_seconds() -> tuple[float, float]:
    """(busy CPU seconds of all cores, wall seconds) since boot, for utilisation deltas."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values) - idle) / _CLOCK_TICKS, time.monotonic()


@dataclass
class CpuMeter:
    """CPU use of some processes and of the whole machine between ``start`` and ``stop``."""

    pids: list[int]
    started_wall: float = 0.0
    started_cpu: float = 0.0
    started_busy: float = 0.0
    process_cpu_pct: float = 0.0
    machine_cpu_pct: float = 0.0

    def start(self) -> CpuMeter:
        """Take the first reading."""
        self.started_cpu = sum(cpu_seconds(p) for p in self.pids)
        self.started_busy, self.started_wall = machine_busy_seconds()
        return self

    def stop(self) -> CpuMeter:
        """Take the second reading; percentages are of one core (200 % = both cores)."""
        cpu = sum(cpu_seconds(p) for p in self.pids)
        busy, wall = machine_busy_seconds()
        elapsed = max(wall - self.started_wall, 1e-9)
        self.process_cpu_pct = 100 * (cpu - self.started_cpu) / elapsed
        self.machine_cpu_pct = 100 * (busy - self.started_busy) / elapsed
        return self


@dataclass(frozen=True)
class Machine:
    """What the results file says about the machine."""

    cores: int
    memory_gib: float
    cpu_model: str
    kernel: str
    load_average: tuple[float, float, float]


def machine() -> Machine:
    """Cores, memory, CPU model, kernel and load average of this machine."""
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return Machine(
        cores=os.cpu_count() or 0,
        memory_gib=mem_kib / 1024 / 1024,
        cpu_model=model,
        kernel=platform.release(),
        load_average=os.getloadavg(),
    )
