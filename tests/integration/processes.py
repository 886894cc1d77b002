"""Real ``tokenboard worker`` processes for integration tests, logging under test-output/."""

from __future__ import annotations

from pathlib import Path

from streams import workerproc
from streams.settings import Settings
from streams.workerproc import free_port

__all__ = ["OUTPUT", "WorkerProcess", "free_port"]

OUTPUT = Path("test-output")


class WorkerProcess(workerproc.WorkerProcess):
    """A worker child logging at INFO to ``test-output/<topic prefix>-<name>.log``."""

    def __init__(self, settings: Settings, name: str) -> None:
        super().__init__(settings, name, OUTPUT / f"{settings.topic_prefix}-{name}.log")

    def start(self) -> WorkerProcess:
        """Start the process (appending to its log)."""
        super().start()
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Block until /readyz answers 200."""
        super().wait_ready(timeout_s)
