"""The read side at public-page scale, against the real Kafka broker and Redis (issue 19).

Cached answers follow the snapshot writers within the documented bound and answer 304s; the
live feed is one tail fanned out to every client, in order, drops a client that stops
reading without slowing the others, and refuses clients beyond its cap; the servers cut a
client that trickles its headers or its body; the ingest gateway refuses to listen on a
non-loopback address without API keys.

The API runs in-process through the same serving plumbing as ``tokenboard api``
(:func:`streams.http.web.serve`), with a Redis user that may only read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from aggregations.weeks import day_id
from streams.cli.main import main
from streams.http.api import build_api_app
from streams.http.ingest import build_ingest_app
from streams.http.web import ServerLimits, bind_listener, serve
from streams.settings import Settings
from streams.store.client import connect
from streams.store.keys import RedisKeys
from streams.topics import ensure_topics
from streams.worker.snapshots import SnapshotWriter
from tests.integration.test_read_side import readonly_settings  # noqa: F401 (fixture)

WEEK = "2026-W47"
TS = 1_795_010_587_000  # 2026-11-18, in WEEK
MODEL = "acme/model-a"
LOCAL = "127.0.0.1"
#: How long a test waits for something that takes well under a second (not a speed claim).
PATIENCE_S = 30.0
DEFAULT_LIMITS = ServerLimits()


@contextlib.asynccontextmanager
async def served(
    app: Any, limits: ServerLimits = DEFAULT_LIMITS, service: str = "api"
) -> AsyncIterator[str]:
    """``app`` served on a free local port as ``tokenboard api``/``ingest`` serve it."""
    listener = bind_listener(0, LOCAL)
    port = listener.getsockname()[1]
    runner = await serve(app, listener, limits, service, shutdown_timeout_s=2.0)
    try:
        yield f"http://{LOCAL}:{port}"
    finally:
        await runner.cleanup()


def table_value(tokens: int) -> dict[str, Any]:
    """A table value as stage 2 holds it (what the snapshot writer writes)."""
    counts = [tokens, tokens - 1, 1, 1, 0]
    return {"c": counts, "d": {day_id(TS): counts}, "ts": TS, "m": ["Model A", "Acme", "US"]}


async def write_snapshot(writer: SnapshotWriter, tokens: int) -> None:
    """One snapshot write of the model and the total, as a worker makes it (values, then the
    ``snapshot:at`` stamp, then the watermark)."""
    items = [
        (f"model:{WEEK}:{MODEL}", table_value(tokens)),
        (f"total:{WEEK}:all", table_value(tokens)),
    ]
    await writer.write(items)


# Cached answers ---------------------------------------------------------------------------
async def test_a_snapshot_change_is_served_within_one_check_interval_and_304s(
    settings: Settings,
    readonly_settings: Settings,  # noqa: F811
) -> None:
    """Every answer to a request made one check interval after a snapshot write shows it; no
    answer ever goes back to an older value; ETags change with the body and a matching
    If-None-Match is a 304. A write that repeats the previous stamp (two workers on one
    millisecond) shows within the maximum age."""
    check_s, max_age_s = 0.1, 0.5
    api_settings = readonly_settings.replace(api_cache_check_ms=100, api_cache_max_age_ms=500)
    admin = connect(settings)
    keys = RedisKeys(settings.redis_prefix)
    writer = SnapshotWriter(admin, keys, "test-writer")
    url = f"/v1/leaderboard/model?week={WEEK}&n=1"
    await write_snapshot(writer, 1_000)
    try:
        async with served(build_api_app(api_settings)) as base, aiohttp.ClientSession(base) as http:

            async def tokens_now() -> tuple[int, str, float]:
                started = time.monotonic()
                async with http.get(url) as response:
                    assert response.status == 200
                    body = await response.json()
                    return body["rows"][0]["tokens"], response.headers["ETag"], started

            seen, etag, _ = await tokens_now()
            assert seen == 1_000
            async with http.get(url, headers={"If-None-Match": etag}) as response:
                assert response.status == 304 and await response.read() == b""
                assert response.headers["ETag"] == etag
                assert "Last-Modified" in response.headers
            async with http.head(url) as response:
                assert response.status == 200 and response.headers["ETag"] == etag
            previous_etag = etag
            for step in range(1, 21):
                tokens = 1_000 + step
                await write_snapshot(writer, tokens)
                written = time.monotonic()
                while True:
                    value, etag, started = await tokens_now()
                    assert value in (tokens - 1, tokens), (step, value)  # never older
                    if started >= written + check_s:
                        assert value == tokens, f"stale {value} {started - written:.3f} s after"
                    if value == tokens:
                        break
                    assert time.monotonic() - written < PATIENCE_S
                assert etag != previous_etag
                async with http.get(url, headers={"If-None-Match": previous_etag}) as response:
                    assert response.status == 200  # the old tag no longer matches
                previous_etag = etag

            # Two writers stamping the same millisecond: the version does not move, the
            # maximum age bounds what is served.
            stamp = await admin.get(keys.snapshot_at)
            await write_snapshot(writer, 5_000)
            await admin.set(keys.snapshot_at, stamp)
            written = time.monotonic()
            while True:
                value, _, started = await tokens_now()
                if started >= written + max_age_s + check_s:
                    assert value == 5_000
                if value == 5_000:
                    break
                assert time.monotonic() - written < PATIENCE_S
                await asyncio.sleep(0.02)
    finally:
        await admin.aclose()


# Live feed --------------------------------------------------------------------------------
async def produce(
    settings: Settings, events: list[dict[str, Any]], partitions: int = 1, chunk: int = 0
) -> None:
    """Publish alerts to the alerts topic, spread over ``partitions``, in list order; with
    ``chunk``, that many at a time, acknowledged, with a short pause in between."""
    producer = AIOKafkaProducer(**settings.kafka_client_options(), acks="all", linger_ms=5)
    await producer.start()
    try:
        step = chunk or len(events) or 1
        for first in range(0, len(events), step):
            futures = [
                await producer.send(
                    settings.alerts_topic,
                    orjson.dumps(event),
                    partition=i % partitions,
                    timestamp_ms=TS + i,
                )
                for i, event in enumerate(events[first : first + step], start=first)
            ]
            await asyncio.gather(*futures)
            if chunk:
                await asyncio.sleep(0.02)
    finally:
        await producer.stop()


def alert(n: int, size: int = 0) -> dict[str, Any]:
    """An alert numbered ``n`` (its message padded to ``size`` characters)."""
    return {
        "id": f"a{n}", "type": "alert", "kind": "surge", "week": WEEK, "subject": MODEL,
        "message": f"alert {n} " + "x" * size, "n": n,
    }  # fmt: skip


class SseReader:
    """A streaming client that collects the ``n`` of every event it receives."""

    def __init__(self, http: aiohttp.ClientSession, path: str) -> None:
        self.http = http
        self.path = path
        self.seen: list[int] = []
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.ready.wait(), PATIENCE_S)

    async def _read(self) -> None:
        async with self.http.get(self.path) as response:
            assert response.status == 200
            async for line in response.content:
                if line.startswith(b"event: ready"):
                    self.ready.set()
                elif line.startswith(b"data: ") and self.ready.is_set():
                    payload = orjson.loads(line[6:])
                    if "n" in payload:  # not the ready message's own empty data
                        self.seen.append(payload["n"])

    async def wait_for(self, count: int) -> list[int]:
        deadline = time.monotonic() + PATIENCE_S
        while len(self.seen) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.seen

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def metric(http: aiohttp.ClientSession, name: str) -> float:
    """The value of an unlabelled metric of the API's /metrics."""
    async with http.get("/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


async def test_the_feed_is_one_tail_delivering_every_event_to_every_client_in_order(
    settings: Settings,
    readonly_settings: Settings,  # noqa: F811
) -> None:
    """Five clients get every alert in publication order; the process read each event once
    (one tail, not one per client); a client that connects later with backlog=3 gets the
    latest three, oldest first, then the live ones."""
    await ensure_topics(settings)
    async with (
        served(build_api_app(readonly_settings)) as base,
        aiohttp.ClientSession(base) as http,
    ):
        connected = await metric(http, "tokenboard_api_stream_clients")  # other tests' too
        clients = [SseReader(http, "/v1/events/stream") for _ in range(5)]
        for client in clients:
            await client.start()
        read_before = await metric(http, "tokenboard_api_stream_events_total")
        await produce(settings, [alert(n) for n in range(200)])
        for client in clients:
            assert await client.wait_for(200) == list(range(200))
        read = await metric(http, "tokenboard_api_stream_events_total") - read_before
        assert read == 200  # each event read and named once for all five clients
        assert await metric(http, "tokenboard_api_stream_clients") == connected + 5

        late = SseReader(http, "/v1/events/stream?backlog=3")
        await late.start()
        assert await late.wait_for(3) == [197, 198, 199]
        # Over several partitions too, every client sees the same events in the same order.
        await produce(settings, [alert(n) for n in range(200, 260)], partitions=4)
        expected = await clients[0].wait_for(260)
        assert sorted(expected[200:]) == list(range(200, 260))
        for client in clients[1:]:
            assert await client.wait_for(260) == expected
        assert await late.wait_for(63) == [197, 198, 199, *expected[200:]]
        for client in [*clients, late]:
            await client.close()


async def test_a_client_that_stops_reading_is_dropped_and_slows_no_one(
    settings: Settings,
    readonly_settings: Settings,  # noqa: F811
) -> None:
    """A client that stops reading fills its queue and is disconnected; a reading client
    gets every event meanwhile. The events come a few at a time, as a live feed's do: the
    rule is about a client that stops taking them, not about one burst."""
    await ensure_topics(settings)
    api_settings = readonly_settings.replace(api_stream_queue=16)
    async with served(build_api_app(api_settings)) as base, aiohttp.ClientSession(base) as http:
        connected = await metric(http, "tokenboard_api_stream_clients")  # other tests' too
        reader = SseReader(http, "/v1/events/stream")
        await reader.start()
        slow = socket.socket()
        # A tiny window: the server's buffers fill after a few events instead of megabytes.
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect((LOCAL, int(base.rsplit(":", 1)[1])))
        slow.sendall(b"GET /v1/events/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        slow.settimeout(PATIENCE_S)
        head = b""
        while b"event: ready" not in head:
            # In a thread: the server runs on this event loop.
            head += await asyncio.to_thread(slow.recv, 4096)
        dropped_before = await metric(http, "tokenboard_api_stream_clients_dropped_total")
        count = 1000
        await produce(settings, [alert(n, size=3000) for n in range(count)], chunk=10)
        assert await reader.wait_for(count) == list(range(count))
        deadline = time.monotonic() + PATIENCE_S
        while await metric(http, "tokenboard_api_stream_clients_dropped_total") == dropped_before:
            assert time.monotonic() < deadline, "the slow client was never dropped"
            await asyncio.sleep(0.1)
        # Its connection is closed: what was buffered drains, then EOF (or a reset).
        received = len(head)
        with contextlib.suppress(ConnectionResetError):
            while chunk := await asyncio.to_thread(slow.recv, 65536):
                received += len(chunk)
        assert received < count * 3000  # it got nowhere near every event
        slow.close()
        assert await metric(http, "tokenboard_api_stream_clients") == connected + 1
        await reader.close()


async def test_clients_beyond_the_cap_get_503_with_retry_after(
    settings: Settings,
    readonly_settings: Settings,  # noqa: F811
) -> None:
    """With TOKENBOARD_API_MAX_STREAMS=2 a third stream gets 503 and Retry-After; once one
    leaves, a new one is let in."""
    await ensure_topics(settings)
    api_settings = readonly_settings.replace(api_max_streams=2)
    async with served(build_api_app(api_settings)) as base, aiohttp.ClientSession(base) as http:
        connected = await metric(http, "tokenboard_api_stream_clients")  # other tests' too
        first, second = SseReader(http, "/v1/events/stream"), SseReader(http, "/v1/events/stream")
        await first.start()
        await second.start()
        async with http.get("/v1/events/stream") as refused:
            assert refused.status == 503 and refused.headers["Retry-After"] == "5"
            body = await refused.json()
            assert body["status"] == 503 and "TOKENBOARD_API_MAX_STREAMS" in body["error"]
        async with http.get("/v1/overview") as other:
            assert other.status == 200  # the cap is on streams only
        await first.close()
        deadline = time.monotonic() + PATIENCE_S
        while await metric(http, "tokenboard_api_stream_clients") > connected + 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        third = SseReader(http, "/v1/events/stream")
        await third.start()
        await second.close()
        await third.close()


# Hardened servers -------------------------------------------------------------------------
def trickle(port: int, head: bytes, line: bytes, every_s: float, give_up_s: float) -> float:
    """Send ``head``, then ``line`` every ``every_s`` until the server closes the connection;
    the seconds it took (``give_up_s`` when it never did)."""
    started = time.monotonic()
    with socket.create_connection((LOCAL, port)) as sock:
        sock.sendall(head)
        sock.settimeout(every_s)
        while time.monotonic() - started < give_up_s:
            try:
                if sock.recv(65536) == b"":
                    return time.monotonic() - started
            except TimeoutError:
                pass
            except ConnectionResetError:
                return time.monotonic() - started
            try:
                sock.sendall(line)
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started
    return give_up_s


async def test_a_client_trickling_header_lines_is_cut(
    readonly_settings: Settings,  # noqa: F811
) -> None:
    """With a 1 s header timeout a connection sending one header line every 0.2 s is closed
    (it was held for ever); a normal request on another connection is served meanwhile.
    The same holds on a kept-alive connection for its second request."""
    limits = ServerLimits(header_timeout_s=1.0)
    give_up = 20.0
    async with (
        served(build_api_app(readonly_settings), limits) as base,
        aiohttp.ClientSession(base) as http,
    ):
        port = int(base.rsplit(":", 1)[1])
        slow = asyncio.to_thread(
            trickle, port, b"GET /v1/overview HTTP/1.1\r\n", b"X-Slow: 1\r\n", 0.2, give_up
        )
        served_meanwhile = http.get("/healthz")
        took, response = await asyncio.gather(slow, served_meanwhile)
        assert response.status == 200
        assert took < give_up, "the trickling connection was never closed"
        second = (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"  # served, then kept alive
            b"GET /v1/overview HTTP/1.1\r\n"
        )
        took = await asyncio.to_thread(trickle, port, second, b"X-Slow: 1\r\n", 0.2, give_up)
        assert took < give_up, "the kept-alive trickling connection was never closed"
        async with http.get("/metrics") as metrics:
            text = await metrics.text()
        assert (
            'tokenboard_http_connections_cut_total{reason="header_timeout",service="api"}' in text
        )


async def test_a_slow_body_is_answered_408_and_too_many_connections_503(
    settings: Settings,
) -> None:
    """The ingest gateway answers 408 to a body that does not arrive within its timeout and
    closes the connection; past the connection maximum a connection gets 503 at once."""
    limits = ServerLimits(body_timeout_s=1.0, max_connections=3)
    async with served(build_ingest_app(settings), limits, "ingest") as base:
        port = int(base.rsplit(":", 1)[1])

        def slow_body() -> bytes:
            with socket.create_connection((LOCAL, port)) as sock:
                sock.sendall(
                    b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 1000\r\n\r\n[{"
                )
                sock.settimeout(PATIENCE_S)
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
                return answer

        answer = await asyncio.to_thread(slow_body)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"did not arrive within 1 s" in answer

        def over_the_limit() -> bytes:
            held = [socket.create_connection((LOCAL, port)) for _ in range(3)]
            try:
                time.sleep(0.2)  # accepted by the server
                with socket.create_connection((LOCAL, port)) as extra:
                    extra.settimeout(PATIENCE_S)
                    answer = b""
                    while chunk := extra.recv(65536):
                        answer += chunk
                    return answer
            finally:
                for sock in held:
                    sock.close()

        answer = await asyncio.to_thread(over_the_limit)
        assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in answer


def tokenboard(*argv: str, settings: Settings) -> list[str]:
    """The command line of ``tokenboard`` with the test's connections."""
    return [
        sys.executable, "-c", "import sys; from streams.cli.main import main; sys.exit(main())",
        *argv, "--kafka", settings.kafka_bootstrap, "--redis", settings.redis_url,
        "--topic-prefix", settings.topic_prefix, "--redis-prefix", settings.redis_prefix,
    ]  # fmt: skip


async def test_the_gateway_refuses_a_public_address_without_api_keys(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tokenboard ingest --host 0.0.0.0`` without API keys stops with one line naming the
    setting; ``--allow-anonymous`` lets it listen."""
    monkeypatch.delenv("TOKENBOARD_API_KEYS", raising=False)
    monkeypatch.delenv("TOKENBOARD_INGEST_ALLOW_ANONYMOUS", raising=False)
    code = await asyncio.to_thread(
        main, ["ingest", "--host", "0.0.0.0", "--port", "0", "--kafka", settings.kafka_bootstrap]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        "error: refusing to listen on 0.0.0.0 without API keys: set TOKENBOARD_API_KEYS, or "
        "accept events from anyone with TOKENBOARD_INGEST_ALLOW_ANONYMOUS=1 (--allow-anonymous)"
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENBOARD_API_KEYS")}
    process = subprocess.Popen(
        tokenboard("ingest", "--host", "0.0.0.0", "--port", "0", "--allow-anonymous",
                   settings=settings),
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        lines: list[str] = []
        for line in process.stderr:
            lines.append(line)
            if "ingest gateway on http://0.0.0.0:" in line:
                break
        else:
            raise AssertionError("".join(lines))
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=PATIENCE_S)


def listening_pids(port: int, pids: list[int]) -> set[int]:
    """Which of ``pids`` hold a listening TCP socket on ``port``."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                listening.add(fields[9])
    holders = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in listening:
                    holders.add(pid)
    return holders


async def test_api_workers_share_one_port(readonly_settings: Settings) -> None:  # noqa: F811
    """``tokenboard api --workers 2``: two processes listen on the one port (SO_REUSEPORT)
    and answer; SIGTERM stops them all."""
    probe = bind_listener(0, LOCAL)
    port = probe.getsockname()[1]
    probe.close()
    argv = tokenboard("api", "--host", LOCAL, "--port", str(port), "--workers", "2",
                      settings=readonly_settings)  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = await asyncio.to_thread(process.stdout.readline)
        assert "2 processes on one port (SO_REUSEPORT)" in banner, banner
        pids = [int(p) for p in banner.rsplit("pids ", 1)[1].split()]
        deadline = time.monotonic() + PATIENCE_S
        async with aiohttp.ClientSession(f"http://{LOCAL}:{port}") as http:
            while listening_pids(port, pids) != set(pids):
                assert time.monotonic() < deadline, "the processes did not both listen"
                await asyncio.sleep(0.1)
            for _ in range(10):
                async with http.get("/v1/overview") as response:
                    assert response.status == 200
    finally:
        process.terminate()
        assert process.wait(timeout=PATIENCE_S) == 0
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)
