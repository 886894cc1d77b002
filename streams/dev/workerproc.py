"""``tokenboard worker`` as a child process: start, wait until ready, read metrics, stop.

What the benchmark harness and the integration tests both need to drive real workers (and
what a supervisor of several local workers would need): each child gets its own health
port and log file, and is signalled like Kubernetes would (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from streams.settings import Settings

#: Ports handed out by :func:`reserve_ports`: below Linux's ephemeral range (32768-60999),
#: so no outgoing connection can take one between its choice and its server's bind, and
#: clear of the fixed ports of the local stacks (9092, 6379, 16379, 19092, 26379, 29092).
RESERVED_PORTS = range(20000, 26000)
_handed_out: set[int] = set()
_held_locks: list[int] = []


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _lock_for_this_process(port: int) -> bool:
    """Claim ``port`` against other processes on this machine until this one exits."""
    folder = Path(tempfile.gettempdir()) / "tokenboard-ports"
    folder.mkdir(exist_ok=True)
    fd = os.open(folder / f"{port}.lock", os.O_CREAT | os.O_RDWR, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _held_locks.append(fd)  # the lock lasts as long as the descriptor: this process
    return True


def reserve_ports(count: int) -> list[int]:
    """``count`` distinct free ports for servers this process starts.

    No port is handed out twice in one process, none to two processes at once (a lock
    file per port), and none from the ephemeral range: a port chosen here stays free
    until its server binds it, however long that takes.
    """
    ports: list[int] = []
    start = random.randrange(len(RESERVED_PORTS))
    for i in range(len(RESERVED_PORTS)):
        port = RESERVED_PORTS[(start + i) % len(RESERVED_PORTS)]
        if port in _handed_out or _port_taken(port) or not _lock_for_this_process(port):
            continue
        _handed_out.add(port)
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"no {count} free ports left in {RESERVED_PORTS}")


def free_port() -> int:
    """One port from :func:`reserve_ports`."""
    return reserve_ports(1)[0]


class WorkerProcess:
    """One ``python -m streams worker`` child with its own health port and log file.

    The child binds any free port and writes it to a file beside its log: a port chosen
    here and bound later could be taken in between.
    """

    def __init__(
        self, settings: Settings, name: str, log_path: Path, *, loglevel: str = "info"
    ) -> None:
        self.port_file = log_path.with_name(log_path.name + ".port")
        self.settings = settings.replace(worker_web_port=0, worker_port_file=str(self.port_file))
        self.name = name
        self.log_path = log_path
        self.loglevel = loglevel
        self.proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        log_path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def pid(self) -> int:
        """The process id (the process must have been started)."""
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> WorkerProcess:
        """Start the child with these settings in its environment (appending to its log)."""
        self.port_file.unlink(missing_ok=True)
        self._port = None
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

    @property
    def port(self) -> int | None:
        """The health and metrics port the running child bound (None until it did)."""
        if self._port is None:
            with contextlib.suppress(OSError, ValueError):
                self._port = int(self.port_file.read_text())
        return self._port

    def url(self, path: str) -> str:
        """URL of ``path`` on the worker's health and metrics port (OSError before it binds)."""
        if self.port is None:
            raise ConnectionRefusedError(f"worker {self.name} has not bound its port yet")
        return f"http://127.0.0.1:{self.port}{path}"

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
