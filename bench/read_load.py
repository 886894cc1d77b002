"""The read side under load: requests per second and latency of the hot read endpoints, and
``/v1/overview`` while thousands of live-feed (SSE) clients are connected.

``run_read_load`` replays the seed week through one worker, starts ``tokenboard api`` (one
process, then ``--workers 2``), and drives it with load generator processes: small aiohttp
clients, each keeping its share of the concurrent connections busy for a few seconds
(``hammer``). Then it opens as many SSE streams as it is asked for (``streams``, in a
separate process), measures ``/v1/overview`` meanwhile, publishes a few alerts and counts
how many streams got every one of them.

Run alone (against the ``TOKENBOARD_*`` stack)::

    python -m bench.read_load                     # the whole phase, a table on stdout
    python -m bench.read_load hammer --url http://127.0.0.1:8080/v1/overview --clients 64
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer
from yarl import URL

from bench.procstats import CpuMeter, rss_mib
from bench.progress import say
from bench.redis_check import delete_prefix
from bench.stats import percentile
from bench.workers import BenchWorker, free_port
from streams.dev.replay import load_scenario, produce_scenario, wait_for_pipeline
from streams.settings import Settings
from streams.store.client import connect
from streams.topics import delete_topics_with_prefix, ensure_topics

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "tests" / "data" / "seed-2026-w47.json"
WEEK = "2026-W47"
#: The hot endpoints, as the dashboard and a public page call them.
HOT_PATHS = (
    f"/v1/leaderboard/model?week={WEEK}",
    f"/v1/report?week={WEEK}",
    "/v1/overview",
    f"/v1/countries/shares?week={WEEK}",
    "/v1/history/model/deepseek/deepseek-v4-flash",
)
TARGET_RPS = 5_000
TARGET_P99_MS = 50.0
TARGET_SSE_CLIENTS = 10_000
TARGET_SSE_OVERVIEW_P99_MS = 100.0
DELIVERY_WAIT_S = 60.0
_PYTHON = [sys.executable, "-m", "bench.read_load"]


@dataclass
class ReadLoad:
    """One endpoint hammered by ``clients`` concurrent connections."""

    path: str
    processes: int
    clients: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    api_cpu_pct: float | None = None
    machine_cpu_pct: float | None = None

    @property
    def rate(self) -> float:
        """Successful requests per second."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def per_core(self) -> float | None:
        """req/s over the share of one core the API processes got: what they serve with a
        core each (the machine is shared, so they rarely got one)."""
        if not self.api_cpu_pct:
            return None
        return self.rate / (self.api_cpu_pct / 100)


@dataclass
class SseLoad:
    """``/v1/overview`` while ``streams_open`` live-feed clients were connected."""

    streams_wanted: int
    streams_open: int
    overview_requests: int
    overview_p50_ms: float
    overview_p99_ms: float
    events_sent: int = 0
    streams_with_every_event: int = 0
    api_rss_mib: float | None = None
    open_seconds: float = 0.0
    #: From publishing the events until every open stream had them all (or the wait ended).
    delivered_seconds: float = 0.0
    error: str = ""


@dataclass
class ReadResults:
    """Everything the read phase measured."""

    loads: list[ReadLoad] = field(default_factory=list)
    sse: list[SseLoad] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# Load generator (runs in child processes) -------------------------------------------------
async def hammer(url: str, clients: int, seconds: float, warmup_s: float) -> dict[str, Any]:
    """``clients`` connections each sending GET ``url`` back to back for ``warmup_s`` (not
    counted) plus ``seconds``: counts and latencies in ms."""
    connector = aiohttp.TCPConnector(limit=clients, limit_per_host=clients)
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter() + warmup_s
        stop = start + seconds

        async def client() -> None:
            nonlocal errors
            while True:
                sent = time.perf_counter()
                if sent >= stop:
                    return
                try:
                    async with session.get(url) as response:
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                done = time.perf_counter()
                if sent >= start:
                    if ok:
                        latencies.append((done - sent) * 1000)
                    else:
                        errors += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    return {"requests": len(latencies), "errors": errors, "seconds": seconds,
            "latencies_ms": latencies}  # fmt: skip


async def hold_streams(url: str, count: int) -> None:
    """Open ``count`` SSE streams of ``url`` (ramping up), print ``open N`` once they are,
    then on each ``report`` line of stdin print how many are open and the events each got."""
    _raise_open_files()
    connector = aiohttp.TCPConnector(limit=0)
    received = [0] * count
    opened = [False] * count
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def stream(i: int, ready: asyncio.Event) -> None:
            try:
                async with session.get(url) as response:
                    if response.status != 200:
                        ready.set()
                        return
                    async for line in response.content:
                        if line.startswith(b"event: ready"):
                            opened[i] = True
                            ready.set()
                        elif line.startswith(b'data: {"'):
                            received[i] += 1
            except (aiohttp.ClientError, OSError):
                pass
            finally:
                opened[i] = False
                ready.set()

        tasks = []
        for first in range(0, count, 250):
            events = [asyncio.Event() for _ in range(first, min(first + 250, count))]
            tasks += [asyncio.create_task(stream(first + j, e)) for j, e in enumerate(events)]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 60)
        print(f"open {sum(opened)}", flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() == "quit":
                break
            counts = [received[i] for i in range(count) if opened[i]]
            print(orjson.dumps({"open": sum(opened), "received": counts}).decode(), flush=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _KeepAlive(asyncio.Protocol):
    """A bare HTTP/1.1 keep-alive client: one GET at a time, the answer's end found by its
    ``Content-Length``. aiohttp's client spends ~150 µs of Python per request, which on this
    2-core machine capped the load below what one API process serves."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.done: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0 or self.done is None or self.done.done():
            return
        head = self.buffer[:head_end].lower()
        at = head.find(b"content-length:")
        line_end = head.find(b"\r\n", at)
        length = int(head[at + 15 : line_end if line_end >= 0 else None])
        if len(self.buffer) >= head_end + 4 + length:
            status = int(self.buffer[9:12])
            self.buffer = self.buffer[head_end + 4 + length :]
            self.done.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionResetError("closed"))

    async def get(self) -> int:
        assert self.transport is not None
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(self.request)
        return await self.done


async def hammer_raw(url: str, clients: int, seconds: float, warmup_s: float) -> dict[str, Any]:
    """:func:`hammer` with :class:`_KeepAlive` connections (reconnecting when closed)."""
    parsed = URL(url)
    host, port = parsed.host or "127.0.0.1", parsed.port or 80
    request = f"GET {parsed.raw_path_qs} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter() + warmup_s
    stop = start + seconds

    async def client() -> None:
        nonlocal errors
        connection: _KeepAlive | None = None
        while True:
            sent = time.perf_counter()
            if sent >= stop:
                break
            try:
                if connection is None:
                    _, connection = await loop.create_connection(
                        lambda: _KeepAlive(request), host, port
                    )
                ok = await connection.get() == 200
            except (OSError, ValueError):
                ok, connection = False, None
            done = time.perf_counter()
            if sent >= start:
                if ok:
                    latencies.append((done - sent) * 1000)
                else:
                    errors += 1
        if connection is not None and connection.transport is not None:
            connection.transport.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return {"requests": len(latencies), "errors": errors, "seconds": seconds,
            "latencies_ms": latencies}  # fmt: skip


def _raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _spawn_hammers(
    url: str, clients: int, seconds: float, generators: int, client: str = "raw"
) -> list[subprocess.Popen[bytes]]:
    share = [clients // generators + (1 if i < clients % generators else 0)
             for i in range(generators)]  # fmt: skip
    processes = []
    for n in share:
        if n:
            argv = [*_PYTHON, "hammer", "--url", url, "--clients", str(n)]
            argv += ["--seconds", str(seconds), "--client", client]
            processes.append(subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=ROOT))
    return processes


async def measure(
    base: str, path: str, clients: int, seconds: float, generators: int, api_pids: list[int]
) -> ReadLoad:
    """Hammer ``path`` with ``clients`` connections over ``generators`` processes."""
    processes = _spawn_hammers(base + path, clients, seconds, generators)
    await asyncio.sleep(hammer_warmup_s(seconds) * 0.8)  # the counted window starts after it
    meter = CpuMeter(api_pids).start()
    outputs = await asyncio.gather(*(asyncio.to_thread(p.communicate) for p in processes))
    meter.stop()
    results = [orjson.loads(out) for out, _ in outputs]
    latencies = [ms for r in results for ms in r["latencies_ms"]]
    return ReadLoad(
        path=path,
        processes=len(api_pids),
        clients=clients,
        requests=sum(r["requests"] for r in results),
        errors=sum(r["errors"] for r in results),
        seconds=seconds,
        p50_ms=percentile(latencies, 0.5),
        p99_ms=percentile(latencies, 0.99),
        api_cpu_pct=meter.process_cpu_pct,
        machine_cpu_pct=meter.machine_cpu_pct,
    )


def hammer_warmup_s(seconds: float) -> float:
    """Warm-up of each generator (connections opened, the answer cached)."""
    return min(1.0, seconds / 4)


# The API processes ---------------------------------------------------------------------
class ApiProcess:
    """``tokenboard api`` as a child process (``--workers N``)."""

    def __init__(self, settings: Settings, workers: int, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = log.open("ab")
        argv = [sys.executable, "-c",
                "import sys; from streams.cli.main import main; sys.exit(main())",
                "api", "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", str(workers)]  # fmt: skip
        env = {**os.environ, **settings.to_env()}
        self.process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=self._log)
        self.workers = workers
        self.pids = [self.process.pid]

    async def ready(self, timeout_s: float = 60.0) -> None:
        """Wait for the banner and for every process's /readyz."""
        assert self.process.stdout is not None
        banner = (await asyncio.to_thread(self.process.stdout.readline)).decode()
        if "pids " in banner:
            self.pids = [int(p) for p in banner.rsplit("pids ", 1)[1].split()]
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession(self.base) as http:
            answered: set[int] = set()
            while len(answered) < 1:
                try:
                    async with http.get("/readyz") as response:
                        if response.status == 200:
                            answered.add(1)
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"tokenboard api on {self.base} did not get ready")
                await asyncio.sleep(0.2)
        # --workers: each child needs its own Redis ping before it is ready.
        await asyncio.sleep(2.5 if self.workers > 1 else 0)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


async def _overview_under_streams(
    settings: Settings, api: ApiProcess, count: int, seconds: float, events: int
) -> SseLoad:
    holder = subprocess.Popen(
        [*_PYTHON, "streams", "--url", api.base + "/v1/events/stream", "--count", str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert holder.stdout is not None and holder.stdin is not None
    started = time.monotonic()
    try:
        line = (await asyncio.to_thread(holder.stdout.readline)).decode()
        open_s = time.monotonic() - started
        if not line.startswith("open "):
            return SseLoad(count, 0, 0, 0.0, 0.0, error=f"stream holder said {line!r}")
        load = await measure(api.base, "/v1/overview", 8, seconds, 1, api.pids)
        await _publish_alerts(settings, events)
        published = time.monotonic()
        while True:
            # The holder reads 10,000 streams in one Python process: give it time.
            await asyncio.sleep(1.0)
            holder.stdin.write(b"report\n")
            holder.stdin.flush()
            report = orjson.loads(await asyncio.to_thread(holder.stdout.readline))
            behind = sum(1 for n in report["received"] if n < events)
            if not behind or time.monotonic() - published > DELIVERY_WAIT_S:
                break
        delivered_s = time.monotonic() - published
        return SseLoad(
            streams_wanted=count,
            streams_open=report["open"],
            overview_requests=load.requests,
            overview_p50_ms=load.p50_ms,
            overview_p99_ms=load.p99_ms,
            events_sent=events,
            streams_with_every_event=sum(1 for n in report["received"] if n >= events),
            api_rss_mib=sum(rss_mib(pid) for pid in api.pids),
            open_seconds=open_s,
            delivered_seconds=delivered_s,
        )
    finally:
        with contextlib.suppress(BrokenPipeError):
            holder.stdin.write(b"quit\n")
            holder.stdin.close()
        try:
            holder.wait(timeout=60)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()


async def _publish_alerts(settings: Settings, count: int) -> None:
    producer = AIOKafkaProducer(**settings.kafka_client_options(), acks="all")
    await producer.start()
    try:
        for i in range(count):
            alert = {"id": f"bench-{uuid.uuid4().hex}", "type": "alert", "kind": "surge",
                     "week": WEEK, "subject": "deepseek/deepseek-v4-flash",
                     "message": f"bench alert {i}"}  # fmt: skip
            await producer.send_and_wait(settings.alerts_topic, orjson.dumps(alert))
    finally:
        await producer.stop()


async def run_read_load(
    base: Settings,
    *,
    run_id: str,
    log_dir: Path,
    seconds: float = 5.0,
    clients: int = 64,
    generators: int = 1,
    stream_counts: tuple[int, ...] = (1_000, 5_000, 10_000),
) -> ReadResults:
    """The whole read phase on fresh topics and keys named after ``run_id``."""
    settings = base.replace(
        topic_prefix=run_id, redis_prefix=run_id, app_id=run_id,
        # Room for the stream test: every stream is a connection (and a file descriptor).
        api_max_streams=max(stream_counts, default=0) + 100,
        http_max_connections=max(stream_counts, default=0) + 1_000,
    )  # fmt: skip
    results = ReadResults()
    await ensure_topics(settings)
    worker = BenchWorker(settings, f"{run_id}-worker", log_dir).start()
    try:
        scenario = load_scenario(SEED)
        say("   replaying the seed scenario through one worker")
        await produce_scenario(settings, scenario, 5, show=False)
        await wait_for_pipeline(settings, scenario, timeout_s=180, show=False)
        for workers in (1, 2):
            api = ApiProcess(settings, workers, log_dir / f"{run_id}-api{workers}.log")
            try:
                await api.ready()
                for path in HOT_PATHS:
                    load = await measure(api.base, path, clients, seconds, generators, api.pids)
                    results.loads.append(load)
                    say(f"   {workers} process(es) {path}: {load.rate:,.0f} req/s, "
                        f"p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms, "
                        f"{load.errors} errors, API CPU {load.api_cpu_pct:.0f} %")  # fmt: skip
            finally:
                api.stop()
        api = ApiProcess(settings, 1, log_dir / f"{run_id}-api-sse.log")
        try:
            await api.ready()
            for count in stream_counts:
                sse = await _overview_under_streams(settings, api, count, seconds, events=5)
                results.sse.append(sse)
                say(f"   {sse.streams_open:,} of {count:,} streams open in "
                    f"{sse.open_seconds:.0f} s: /v1/overview p50 {sse.overview_p50_ms:.1f} ms "
                    f"p99 {sse.overview_p99_ms:.1f} ms; {sse.streams_with_every_event:,} "
                    f"streams got all {sse.events_sent} events; API RSS "
                    f"{sse.api_rss_mib or 0:.0f} MiB {sse.error}")  # fmt: skip
                if sse.error or sse.streams_open < count:
                    break
        finally:
            api.stop()
    finally:
        worker.stop()
        await delete_topics_with_prefix(settings, run_id)
        client = connect(settings)
        try:
            await delete_prefix(client, run_id)
        finally:
            await client.aclose()
    return results


def read_targets(results: ReadResults) -> list[str]:
    """The issue's targets against what was measured."""
    one = [r for r in results.loads if r.processes == 1]
    two = [r for r in results.loads if r.processes == 2]
    rows: list[tuple[str, str, str]] = []
    if one:
        worst = min(one, key=lambda r: r.rate)
        slowest = max(one, key=lambda r: r.p99_ms)
        cores = [r.per_core for r in one if r.per_core]
        met = worst.rate >= TARGET_RPS and slowest.p99_ms < TARGET_P99_MS
        rows.append((
            f"hot endpoints ≥ {TARGET_RPS:,} req/s with p99 < {TARGET_P99_MS:.0f} ms, one "
            "process, 64 clients",
            f"lowest {worst.rate:,.0f} req/s (`{worst.path}`), highest p99 "
            f"{slowest.p99_ms:.1f} ms; per API core {min(cores, default=0):,.0f}–"
            f"{max(cores, default=0):,.0f} req/s",
            "met" if met else "**missed** on this shared machine",
        ))  # fmt: skip
    if one and two:
        ratio = sum(r.rate for r in two) / max(sum(r.rate for r in one), 1e-9)
        rows.append((
            "`--workers 2` scales req/s with cores",
            f"{ratio:.2f}x the one-process req/s (sum over the endpoints)",
            "met" if ratio > 1.3 else "**missed** (the 2 cores were shared)",
        ))  # fmt: skip
    if results.sse:
        best = max(results.sse, key=lambda s: s.streams_open)
        met = (best.streams_open >= TARGET_SSE_CLIENTS
               and best.overview_p99_ms < TARGET_SSE_OVERVIEW_P99_MS)  # fmt: skip
        rows.append((
            f"{TARGET_SSE_CLIENTS:,} SSE clients, `/v1/overview` p99 < "
            f"{TARGET_SSE_OVERVIEW_P99_MS:.0f} ms, one upstream consumer per process",
            f"{best.streams_open:,} clients, p99 {best.overview_p99_ms:.1f} ms, "
            f"{best.streams_with_every_event:,} got every event",
            "met" if met else "**missed**",
        ))  # fmt: skip
    lines = ["| target | measured | |", "| --- | --- | --- |"]
    return lines + [f"| {t} | {m} | {ok} |" for t, m, ok in rows]


def render_read(results: ReadResults) -> list[str]:
    """The phase's section of RESULTS.md: method, targets, tables."""
    return [
        "The seed week replayed through one worker; `tokenboard api` (one process, then "
        "`--workers 2`) driven by load generator processes (`bench/read_load.py`, bare "
        "HTTP/1.1 keep-alive clients) for a few seconds per endpoint after a warm-up. *per "
        "API core* is req/s divided by the share of a core the API processes got: what one "
        "process serves with a core of its own (the machine was shared).",
        "",
        *read_targets(results),
        "",
        *render_rows(results),
        "",
        *[f"- {note}" for note in results.notes],
    ]


def render_rows(results: ReadResults) -> list[str]:
    """The phase's tables (Markdown), for RESULTS.md and the stand-alone run."""
    lines = [
        "| endpoint | API processes | clients | requests | req/s | p50 ms | p99 ms | errors | "
        "API CPU % | req/s per API core | machine CPU % |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results.loads:
        per_core = f"{r.per_core:,.0f}" if r.per_core else "–"
        lines.append(
            f"| `{r.path}` | {r.processes} | "
            f"{r.clients} | {r.requests:,} | {r.rate:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | "
            f"{r.errors} | {r.api_cpu_pct or 0:.0f} | {per_core} | {r.machine_cpu_pct or 0:.0f} |"
        )
    lines += [
        "",
        "| SSE streams asked | open | /v1/overview requests | p50 ms | p99 ms | "
        "streams with every event | seconds until then | API RSS MiB | seconds to open |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in results.sse:
        lines.append(
            f"| {s.streams_wanted:,} | {s.streams_open:,} | {s.overview_requests:,} | "
            f"{s.overview_p50_ms:.1f} | {s.overview_p99_ms:.1f} | "
            f"{s.streams_with_every_event:,} of {s.streams_open:,} ({s.events_sent} events) | "
            f"{s.delivered_seconds:.0f} | {s.api_rss_mib or 0:.0f} | {s.open_seconds:.0f} |"
            + (f" {s.error}" if s.error else "")
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.read_load [hammer|streams] ...``."""
    parser = argparse.ArgumentParser(prog="python -m bench.read_load", description=__doc__)
    sub = parser.add_subparsers(dest="mode")
    h = sub.add_parser("hammer", help="one load generator process (JSON on stdout)")
    h.add_argument("--url", required=True)
    h.add_argument("--clients", type=int, default=64)
    h.add_argument("--seconds", type=float, default=5.0)
    h.add_argument("--client", choices=["raw", "aiohttp"], default="raw")
    s = sub.add_parser("streams", help="hold SSE streams open")
    s.add_argument("--url", required=True)
    s.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--generators", type=int, default=1, help="load generator processes")
    parser.add_argument("--streams", default="1000,5000,10000", help="SSE levels")
    args = parser.parse_args(argv)
    if args.mode == "hammer":
        run = hammer_raw if args.client == "raw" else hammer
        out = asyncio.run(run(args.url, args.clients, args.seconds, hammer_warmup_s(args.seconds)))
        sys.stdout.buffer.write(orjson.dumps(out))
        return 0
    if args.mode == "streams":
        asyncio.run(hold_streams(args.url, args.count))
        return 0
    run_id = "readbench" + uuid.uuid4().hex[:8]
    results = asyncio.run(
        run_read_load(
            Settings.from_env(),
            run_id=run_id,
            log_dir=ROOT / "bench" / "data" / "logs" / run_id,
            seconds=args.seconds,
            clients=args.clients,
            generators=args.generators,
            stream_counts=tuple(int(n) for n in args.streams.split(",") if n.strip()),
        )
    )
    print("\n".join(render_read(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
