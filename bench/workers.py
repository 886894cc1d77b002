"""Real ``tokenboard worker`` subprocesses for the benchmark, with their memory figures."""

from __future__ import annotations

from pathlib import Path

from bench.procstats import peak_rss_mib, rss_mib
from streams.dev import workerproc
from streams.dev.workerproc import free_port, parse_metrics
from streams.settings import Settings

__all__ = ["BenchWorker", "free_port", "parse_metrics"]


class BenchWorker(workerproc.WorkerProcess):
    """A worker child logging warnings only (logging costs CPU) to ``log_dir/<name>.log``."""

    def __init__(self, settings: Settings, name: str, log_dir: Path) -> None:
        super().__init__(settings, name, log_dir / f"{name}.log", loglevel="warning")

    def start(self) -> BenchWorker:
        """Start the process (appending to its log)."""
        super().start()
        return self

    def rss_mib(self) -> float:
        """Current RSS in MiB."""
        return rss_mib(self.pid)

    def peak_rss_mib(self) -> float:
        """Peak RSS in MiB."""
        return peak_rss_mib(self.pid)
