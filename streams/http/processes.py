"""Several server processes behind one port (``tokenboard api --workers N``, ``tokenboard
ingest --workers N``).

The parent checks that the port is free with an ordinary bind (a port held by anything,
even by sockets with ``SO_REUSEPORT``, fails it), then starts N children that each bind it
with ``SO_REUSEPORT``: the kernel spreads new connections over their listening sockets, so
no process accepts for another and the request rate grows with the cores. The parent only
supervises: SIGINT or SIGTERM stops every child, and when one child exits the others are
stopped too and its exit code is the parent's (a supervisor such as Kubernetes restarts the
whole group).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

from streams.http.web import PortInUse, bind_listener
from streams.settings import Settings

__all__ = ["run_processes"]

#: The child runs the same command line with ``--reuse-port`` (one process, no banner).
_CHILD = "import sys; from streams.cli.main import main; sys.exit(main(sys.argv[1:]))"
POLL_S = 0.2
STOP_TIMEOUT_S = 15.0


def run_processes(
    command: str,
    settings: Settings,
    workers: int,
    port: int,
    *,
    host: str,
    in_use: str,
    banner: str,
) -> int:
    """Run ``workers`` processes of ``tokenboard <command>`` sharing ``port`` on ``host``;
    returns the exit code (0 after SIGINT/SIGTERM).

    ``in_use`` is the one line printed when the port is taken and ``banner`` what the first
    line says the processes serve; both are formatted with ``port`` (and ``banner`` with
    ``host`` as a client reaches it). Each child gets ``settings`` through the environment,
    so a flag the child must honour too is folded into ``settings`` by the caller.
    """
    try:
        probe = bind_listener(port, host)
    except PortInUse:
        print(in_use.format(port=port), file=sys.stderr)
        return 2
    port = probe.getsockname()[1]  # port 0: the free port found, the same for every child
    probe.close()
    argv = [sys.executable, "-c", _CHILD, command, "--host", host, "--port", str(port)]
    argv += ["--workers", "1", "--reuse-port"]
    # The settings as this process resolved them (flags included) reach every child.
    env = {**os.environ, **settings.to_env()}
    children = [subprocess.Popen(argv, env=env) for _ in range(workers)]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    print(
        f"tokenboard {command}: {banner.format(host=shown, port=port)}  ·  "
        f"{workers} processes on one port (SO_REUSEPORT), pids "
        + " ".join(str(c.pid) for c in children),
        flush=True,
    )
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = 0
        while not stopping:
            ended = [c for c in children if c.poll() is not None]
            if ended:
                code = ended[0].returncode or 1
                print(
                    f"tokenboard {command}: process {ended[0].pid} exited with "
                    f"{ended[0].returncode}; stopping the others",
                    file=sys.stderr,
                    flush=True,
                )
                break
            time.sleep(POLL_S)
        _stop(children)
        return 0 if stopping else code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
