"""Real ``tokenboard worker`` processes for integration tests, logging under the test's folder."""

from __future__ import annotations

from streams.dev import workerproc
from streams.dev.workerproc import free_port
from streams.settings import Settings
from tests.integration import process_logs

__all__ = ["OUTPUT", "WorkerProcess", "free_port"]

#: Artifacts a test keeps after the run (screenshots, figures).
OUTPUT = process_logs.DEFAULT_FOLDER


class WorkerProcess(workerproc.WorkerProcess):
    """A worker child logging at INFO to ``<name>-<topic prefix>.log`` in the test's folder;
    a failing test prints its tail."""

    def __init__(self, settings: Settings, name: str) -> None:
        log = process_logs.log_folder() / f"worker-{name}-{settings.topic_prefix}.log"
        super().__init__(settings, name, log)
        process_logs.watch(log, f"worker {name}")

    def start(self) -> WorkerProcess:
        """Start the process (appending to its log)."""
        super().start()
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Block until /readyz answers 200."""
        super().wait_ready(timeout_s)
