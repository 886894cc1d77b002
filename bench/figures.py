"""The figures one benchmark run produces (plain dataclasses, rendered by ``bench.report``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Throughput:
    """Events per second of one system over (part of) the dataset."""

    name: str
    events: int
    seconds: float
    complete: bool
    startup_s: float | None = None
    cpu_pct: float | None = None
    machine_cpu_pct: float | None = None
    peak_rss_mib: float | None = None
    exact: bool | None = None
    error: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Events per second (0 when nothing was measured)."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Latency:
    """Produce-to-Redis visibility at a steady produce rate."""

    target_rate: int
    achieved_rate: float
    seconds: float
    ticks: int
    tick_ms: int
    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float
    unseen_ticks: int = 0
    worker_cpu_pct: float | None = None
    machine_cpu_pct: float | None = None
    error: str = ""


@dataclass
class Memory:
    """RSS of one worker holding ``models`` x ``weeks`` model-week keys."""

    models: int
    weeks: int
    events: int
    table_keys: int
    rss_mib: float
    peak_rss_mib: float
    load_seconds: float
    baseline_rss_mib: float
    exact: bool | None = None
    error: str = ""


@dataclass
class SnapshotCost:
    """One timed ``SnapshotWriter.write`` of ``keys`` table values."""

    keys: int
    seconds: float
    redis_commands: int

    @property
    def keys_per_s(self) -> float:
        """Keys written per second."""
        return self.keys / self.seconds if self.seconds > 0 else 0.0


@dataclass
class HotSpot:
    """One line of a py-spy profile summary."""

    function: str
    location: str
    self_pct: float
    total_pct: float


@dataclass
class Profile:
    """Where one worker's CPU went during a profiled run over the dataset."""

    samples: int
    seconds: float
    rate: float
    by_self: list[HotSpot] = field(default_factory=list)
    by_total: list[HotSpot] = field(default_factory=list)
    raw_path: str = ""
    error: str = ""
    events_per_s: float = 0.0
