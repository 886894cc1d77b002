"""``tokenboard ingest --workers N`` against the real broker: N gateway processes on one port
(SO_REUSEPORT), each with its own Kafka producer.

Every process answers ``/v1/events`` and the OTLP ``/v1/traces`` and every event reaches the
usage topic exactly once; ``/healthz``, ``/readyz`` and ``/metrics`` answer for the process
that took the connection; SIGTERM or SIGINT stops them all; a port in use stops the group
with one line naming the setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from aggregations.otel import event_id_of
from streams.http.web import bind_listener
from streams.settings import Settings
from tests.integration import process_logs
from tests.integration.kafka_read import read_usage_events
from tests.integration.test_read_scale import listening_pids, tokenboard
from tests.otlp_spans import SpanSpec, genai_attributes, request

LOCAL = "127.0.0.1"
#: How long a test waits for something that takes seconds at most (not a speed claim): the
#: producers of both processes connecting on a loaded machine.
PATIENCE_S = 60.0
WORKERS = 2
EVENTS_PER_BODY = 50
SPANS_PER_BODY = 10
#: Requests on new connections after the one per process, for the kernel to spread.
MORE_BODIES = 20
EVENTS_200 = re.compile(
    r'^tokenboard_http_requests_total\{route="/v1/events",service="ingest",status="200"\} (\S+)$',
    re.MULTILINE,
)


def free_port() -> int:
    """A local port where nothing listens."""
    probe = bind_listener(0, LOCAL)
    port: int = probe.getsockname()[1]
    probe.close()
    return port


def serving_pid(port: int, client_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the server side of the accepted connection from
    ``client_port`` to ``port`` (None while it is not accepted)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            local, remote = fields[1].rsplit(":", 1)[1], fields[2].rsplit(":", 1)[1]
            if int(local, 16) == port and int(remote, 16) == client_port and fields[3] == "01":
                inodes.add(fields[9])
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return pid
    return None


class Connection:
    """One keep-alive HTTP/1.1 connection to the gateway (so the process behind it is known)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.http = http.client.HTTPConnection(LOCAL, port, timeout=PATIENCE_S)
        self.http.connect()
        assert self.http.sock is not None
        self.client_port: int = self.http.sock.getsockname()[1]

    def call(
        self, method: str, path: str, body: bytes | None = None, content_type: str = ""
    ) -> tuple[int, bytes]:
        """(status, body) of one request."""
        headers = {"Content-Type": content_type} if content_type else {}
        self.http.request(method, path, body=body, headers=headers)
        response = self.http.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        """Close the connection."""
        self.http.close()


def json_body(tag: str, count: int) -> tuple[bytes, set[str]]:
    """A JSON array of ``count`` valid events, and their ids."""
    now_ms = time.time_ns() // 1_000_000
    events = [
        {
            "event_id": f"{tag}-{i}",
            "ts": now_ms - 60_000 - i,
            "model": "deepseek/deepseek-v4-flash",
            "prompt_tokens": 1000 + i,
            "completion_tokens": 200 + i,
        }
        for i in range(count)
    ]
    return orjson.dumps(events), {str(e["event_id"]) for e in events}


def spans_body(first: int, count: int) -> tuple[bytes, set[str]]:
    """An OTLP protobuf export request of ``count`` GenAI spans, and their event ids."""
    now_ns = time.time_ns()
    specs = [
        SpanSpec(
            trace_id=(first + i).to_bytes(16, "big"),
            span_id=(first + i + 1).to_bytes(8, "big"),
            end_ns=now_ns - 1_000_000,
            attributes=genai_attributes(),
        )
        for i in range(count)
    ]
    ids = {event_id_of(s.trace_id, s.span_id) for s in specs}
    return request(specs).SerializeToString(), ids


@contextlib.contextmanager
def gateway_group(
    settings: Settings, *argv: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], int, list[int]]]:
    """``tokenboard ingest`` with ``argv`` on a free port: (parent, port, children's pids),
    once the banner named them; stopped with SIGTERM at the end if still running."""
    port = free_port()
    log = process_logs.log_folder() / f"ingest-{settings.topic_prefix}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    process_logs.watch(log, "ingest processes")
    command = tokenboard("ingest", "--host", LOCAL, "--port", str(port), *argv, settings=settings)
    with log.open("w") as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env
        )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert f"{WORKERS} processes on one port (SO_REUSEPORT)" in banner, banner
        pids = [int(p) for p in banner.rsplit("pids ", 1)[1].split()]
        yield process, port, pids
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=PATIENCE_S)


def ready_connections(port: int, pids: list[int]) -> dict[int, Connection]:
    """A connection to each process, once that process is connected to Kafka: new
    connections until the kernel handed one to each (its ``/readyz`` tells its own state)."""
    ready: dict[int, Connection] = {}
    deadline = time.monotonic() + PATIENCE_S
    while len(ready) < len(pids):
        assert time.monotonic() < deadline, f"ready: {sorted(ready)} of {pids}"
        connection = Connection(port)
        status, _ = connection.call("GET", "/readyz")
        pid = serving_pid(port, connection.client_port, pids)
        if status == 200 and pid is not None and pid not in ready:
            ready[pid] = connection
        else:
            connection.close()
            if status != 200:
                time.sleep(0.2)
    return ready


async def test_two_gateway_processes_share_one_port_and_produce_each_event_once(
    settings: Settings,
) -> None:
    """``--workers 2``: each process takes ``/v1/events`` and ``/v1/traces`` and answers 200
    only for what Kafka acknowledged; the usage topic holds every event once. ``/healthz``
    answers in each, and each ``/metrics`` counts only its own requests: summed they are all."""
    with gateway_group(settings, "--workers", str(WORKERS)) as (_, port, pids):
        deadline = time.monotonic() + PATIENCE_S
        while listening_pids(port, pids) != set(pids):
            assert time.monotonic() < deadline, "the processes did not both listen"
            await asyncio.sleep(0.1)
        by_pid = await asyncio.to_thread(ready_connections, port, pids)
        sent: set[str] = set()
        posts = 0
        for n, (pid, connection) in enumerate(by_pid.items()):
            body, ids = json_body(f"proc{n}", EVENTS_PER_BODY)
            status, answer = connection.call("POST", "/v1/events", body, "application/json")
            assert status == 200, (pid, answer)
            assert orjson.loads(answer)["accepted"] == EVENTS_PER_BODY
            sent |= ids
            posts += 1
            body, ids = spans_body(1_000 * (n + 1), SPANS_PER_BODY)
            status, answer = connection.call("POST", "/v1/traces", body, "application/x-protobuf")
            assert status == 200, (pid, answer)
            sent |= ids
            assert connection.call("GET", "/healthz")[0] == 200
        for n in range(MORE_BODIES):
            connection = Connection(port)
            body, ids = json_body(f"more{n}", EVENTS_PER_BODY)
            status, answer = connection.call("POST", "/v1/events", body, "application/json")
            connection.close()
            assert status == 200, answer
            sent |= ids
            posts += 1
        counted = 0.0
        for pid, connection in by_pid.items():
            status, text = connection.call("GET", "/metrics")
            assert status == 200
            served = EVENTS_200.search(text.decode())
            assert served is not None, f"process {pid} counted no /v1/events"
            counted += float(served.group(1))
            connection.close()
        assert counted == posts
    assert set(await read_usage_events(settings)) == sent
    assert len(sent) == (WORKERS + MORE_BODIES) * EVENTS_PER_BODY + WORKERS * SPANS_PER_BODY


@pytest.mark.parametrize(
    ("stop", "how"),
    [(signal.SIGTERM, "flag"), (signal.SIGINT, "TOKENBOARD_INGEST_WORKERS")],
    ids=["SIGTERM", "SIGINT"],
)
async def test_a_signal_stops_every_gateway_process(
    settings: Settings, stop: signal.Signals, how: str
) -> None:
    """SIGTERM or SIGINT to the parent stops every child and the parent exits 0; the group
    comes from ``--workers`` or from ``TOKENBOARD_INGEST_WORKERS``."""
    argv = ("--workers", str(WORKERS)) if how == "flag" else ()
    env = {**os.environ, "TOKENBOARD_INGEST_WORKERS": str(WORKERS)} if how != "flag" else None
    with gateway_group(settings, *argv, env=env) as (process, port, pids):
        deadline = time.monotonic() + PATIENCE_S
        while listening_pids(port, pids) != set(pids):
            assert time.monotonic() < deadline, "the processes did not both listen"
            await asyncio.sleep(0.1)
        process.send_signal(stop)
        assert await asyncio.to_thread(process.wait, PATIENCE_S) == 0
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)


@pytest.mark.parametrize("workers", [1, WORKERS])
@pytest.mark.parametrize("reuse_port", [False, True], ids=["plain", "SO_REUSEPORT"])
def test_a_port_in_use_stops_the_gateway_with_one_line(
    settings: Settings, workers: int, reuse_port: bool
) -> None:
    """A port held by another socket (with or without SO_REUSEPORT, which would otherwise let
    a second group join it) stops the gateway with exit 2 and one line naming the setting;
    no child is started."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuse_port:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((LOCAL, 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        command = tokenboard("ingest", "--host", LOCAL, "--port", str(port),
                             "--workers", str(workers), settings=settings)  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=PATIENCE_S)
    finally:
        holder.close()
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"error: port {port} for the ingest gateway is in use (TOKENBOARD_INGEST_PORT or --port)"
    ]
