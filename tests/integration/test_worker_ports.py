"""Two workers on one machine: the health and metrics port never crashes the second one."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

from streams.settings import Settings
from streams.worker.app import DEFAULT_WORKER_WEB_PORT
from tests.integration.processes import WorkerProcess


@contextlib.contextmanager
def occupied(port: int) -> Iterator[None]:
    """Something else listens on ``port`` (0.0.0.0, like the worker) for the block."""
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):  # already taken by someone else: just as good
            sock.bind(("0.0.0.0", port))
            sock.listen(1)
        yield
    finally:
        sock.close()


def test_a_port_set_on_purpose_that_is_taken_stops_the_worker_with_one_line(
    settings: Settings,
) -> None:
    """An explicit port in use: exit 2 and one line naming TOKENBOARD_WORKER_WEB_PORT."""
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        env = {**os.environ, **settings.replace(worker_web_port=port).to_env()}
        done = subprocess.run(
            [sys.executable, "-m", "streams", "worker"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"port {port}" in lines[0] and "TOKENBOARD_WORKER_WEB_PORT" in lines[0]


def test_a_second_worker_with_the_default_port_takes_a_free_one_and_says_which(
    settings: Settings,
) -> None:
    """The default port in use: the worker serves /readyz on another port and names it."""
    worker = WorkerProcess(settings, "second")
    # The default port, as a user's second `tokenboard worker` would have it.
    worker.settings = worker.settings.replace(worker_web_port=DEFAULT_WORKER_WEB_PORT)
    with occupied(DEFAULT_WORKER_WEB_PORT):
        worker.start()
        try:
            worker.wait_ready()
            assert worker.port is not None and worker.port != DEFAULT_WORKER_WEB_PORT
            deadline = time.monotonic() + 10
            while f"on port {worker.port} instead" not in worker.log_path.read_text():
                assert time.monotonic() < deadline, worker.log_path.read_text()[-2000:]
                time.sleep(0.1)
            assert "TOKENBOARD_WORKER_WEB_PORT" in worker.log_path.read_text()
        finally:
            worker.stop()
