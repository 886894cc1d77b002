"""``tokenboard worker`` as a child process: start, wait until ready, read metrics, stop.

What the benchmark harness and the integration tests both need to drive real workers (and
what a supervisor of several local workers would need): each child gets its own health
port and log file, and is signalled like Kubernetes would (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from streams.settings import Settings


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WorkerProcess:
    """One ``python -m streams worker`` child with its own health port and log file."""

    def __init__(
        self, settings: Settings, name: str, log_path: Path, *, loglevel: str = "info"
    ) -> None:
        self.settings = settings.replace(worker_web_port=free_port())
        self.name = name
        self.log_path = log_path
        self.loglevel = loglevel
        self.proc: subprocess.Popen[bytes] | None = None
        log_path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def pid(self) -> int:
        """The process id (the process must have been started)."""
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> WorkerProcess:
        """Start the child with these settings in its environment (appending to its log)."""
        env = {**os.environ, **self.settings.to_env()}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams", "worker", "--loglevel", self.loglevel],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def url(self, path: str) -> str:
        """URL of ``path`` on the worker's health and metrics port."""
        return f"http://127.0.0.1:{self.settings.worker_web_port}{path}"

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Block until /readyz answers 200 (the pre-aggregator joined its group)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"worker {self.name} exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url("/readyz"), timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"worker {self.name} not ready after {timeout_s} s; see {self.log_path}")

    async def wait_ready_async(self, timeout_s: float = 90.0) -> None:
        """:meth:`wait_ready` without blocking the event loop."""
        await asyncio.to_thread(self.wait_ready, timeout_s)

    def metrics(self) -> dict[str, float]:
        """The worker's ``tokenboard_*`` Prometheus samples, summed over labels (empty on error)."""
        try:
            with urllib.request.urlopen(self.url("/metrics"), timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return {}
        return parse_metrics(text)

    async def metrics_async(self) -> dict[str, float]:
        """:meth:`metrics` without blocking the event loop."""
        return await asyncio.to_thread(self.metrics)

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed or committed."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it hangs."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def parse_metrics(text: str) -> dict[str, float]:
    """Sum the samples of each ``tokenboard_*`` metric over its labels."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("tokenboard_"):
            continue
        name_part, _, value = line.rpartition(" ")
        name = name_part.split("{", 1)[0]
        try:
            out[name] = out.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return out
