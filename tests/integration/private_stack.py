"""Private Kafka brokers and redis-servers for tests that stop, restart, flush or secure them.

The shared stack (``make test``'s, or a developer's) must never be restarted: other test runs
use it at the same time. A test that needs to break a service starts its own here, on free
ports and under its own run folder (normally below ``tmp_path``), and stops it at the end.

* :class:`PrivateStack` wraps :class:`streams.dev.stack.LocalStack` (the real Kafka 3.9 KRaft
  broker from Maven jars and a real redis-server), optionally with SASL/SCRAM and TLS
  listeners, and can stop and start one service on its existing data.
* :class:`RedisServer` runs a redis-server with a password, an ACL user and/or TLS.
* :func:`make_tls_files` makes a throw-away CA and a server certificate with ``openssl``.
* :func:`wait_until` is the one bounded polling loop every test uses; :func:`wait_for_totals`
  waits until Redis holds exactly the totals of a list of events, and the other helpers read
  topics, worker metrics and run the gateway in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka.errors import KafkaError

from aggregations.events import UsageEvent
from aggregations.totals import NO_APP
from aggregations.weeks import week_id, week_start_ms
from streams.dev.stack import KafkaSecurity, LocalStack, _redis_version
from streams.dev.workerproc import reserve_ports
from streams.http.ingest import build_ingest_app
from streams.sdk.producer import UsageProducer
from streams.settings import Settings
from streams.store.keys import RedisKeys
from tests.integration import process_logs
from tests.integration.kafka_read import read_topic
from tests.integration.processes import WorkerProcess

T = TypeVar("T")

#: Heap of a private broker: enough for a few thousand test events, small on a 2-CPU runner.
PRIVATE_KAFKA_HEAP = "384m"
REPO = Path(__file__).resolve().parents[2]


async def wait_until(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.25,
) -> T:
    """Poll ``check`` until it returns something other than None/False; fail after timeout_s.

    A check that hangs (a client stuck on a node that is down) counts as a failed poll once
    the time is up, so the wait always ends with this function's message.
    """
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0) + interval_s + 5):
                result = await check()
        except Exception as exc:  # a service may be down for a moment; keep polling
            result, last = None, exc
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout_s:.0f} s (last error: {last})")
        await asyncio.sleep(interval_s)


def _seed_classpath(run_dir: Path, version: str) -> None:
    """Copy a cached broker classpath of another run folder (saves a Maven run per stack).

    Only reads the other folders; LocalStack resolves the jars with Maven when none is found.
    """
    target = run_dir / "kafka" / f"classpath-{version}.txt"
    if target.exists():
        return
    name = f"classpath-{version}.txt"
    candidates: list[Path] = []
    for base in (Settings.from_env().run_path, REPO / ".run"):
        # Not a recursive glob: the data folders of running brokers change under it.
        candidates += [base / "kafka" / name, *sorted(base.glob(f"*/kafka/{name}"))]
    for cached in candidates:
        with contextlib.suppress(OSError):
            jars = cached.read_text().strip()
            if jars and all(Path(j).exists() for j in jars.split(os.pathsep)):
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(jars)
                return


class PrivateStack:
    """A Kafka broker and/or a redis-server of one test, on free ports under ``root``.

    :attr:`settings` points at them (Kafka through its PLAINTEXT listener); services left
    out of ``services`` keep the addresses of ``base`` (normally the shared stack).
    """

    def __init__(
        self,
        root: Path,
        base: Settings,
        *,
        services: tuple[str, ...] = ("kafka", "redis"),
        security: KafkaSecurity | None = None,
    ) -> None:
        kafka_port, controller_port, redis_port = reserve_ports(3)
        changes: dict[str, object] = {
            "run_dir": str(root),
            "kafka_port": kafka_port,
            "kafka_controller_port": controller_port,
            "redis_port": redis_port,
            "kafka_heap": PRIVATE_KAFKA_HEAP,
        }
        if "kafka" in services:
            changes["kafka_bootstrap"] = f"127.0.0.1:{kafka_port}"
        if "redis" in services:
            changes["redis_url"] = f"redis://127.0.0.1:{redis_port}/0"
        self.settings = base.replace(**changes)
        self.services = services
        self.root = root
        self.lines: list[str] = []
        self.stack = LocalStack(self.settings, log=self.lines.append, security=security)
        for name in services:
            process_logs.watch(self.stack.log_file(name), f"private {name}")

    def start(self) -> PrivateStack:
        """Start every service of this stack and wait until each answers."""
        _seed_classpath(self.root, self.settings.kafka_version)
        for name in ("redis", "kafka"):
            if name in self.services:
                self.stack.start_service(name)
        return self

    def stop_service(self, name: str) -> None:
        """Stop one service (graceful SIGTERM), keeping its data."""
        self.stack.stop_service(name)

    def start_service(self, name: str) -> None:
        """Start one service again on its data and wait until it answers."""
        self.stack.start_service(name)

    def wipe_redis(self) -> None:
        """Delete Redis's data files (append-only files, RDB) while it is stopped."""
        data = self.stack.data_dir("redis")
        assert _redis_version(self.settings.redis_port) is None, "stop Redis before wiping it"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)

    def close(self) -> None:
        """Stop everything this stack started."""
        self.stack.down()

    def __enter__(self) -> PrivateStack:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> PrivateStack:
        """Start in a thread: the stack's readiness probe runs its own event loop."""
        try:
            return await asyncio.to_thread(self.start)
        except BaseException:
            await asyncio.to_thread(self.close)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.close)

    async def restart(self, name: str, down_s: float) -> float:
        """Stop a service, keep it down ``down_s`` seconds, start it on the same data.

        Runs in threads so the caller's clients keep working; returns the outage in seconds.
        """
        await asyncio.to_thread(self.stop_service, name)
        down_at = time.monotonic()
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self.start_service, name)
        return time.monotonic() - down_at

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The last lines of a service's log (for failure messages)."""
        return self.stack.tail_logs(name, lines)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1/localhost."""

    ca: Path
    cert: Path
    key: Path
    #: The server's PKCS#8 key followed by its certificate: Kafka's PEM keystore.
    keystore: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Generate the CA and server certificate with the ``openssl`` CLI (skip without it)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make test certificates")
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    ext = directory / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", "/CN=tokenboard test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    keystore = directory / "keystore.pem"
    keystore.write_text(key.read_text() + cert.read_text())
    return TlsFiles(ca=ca, cert=cert, key=key, keystore=keystore)


class RedisServer:
    """A redis-server with extra arguments (``--requirepass``, ``--user``, TLS) on a free port."""

    def __init__(self, root: Path, *args: str, tls: TlsFiles | None = None) -> None:
        self.root = root
        self.port = reserve_ports(1)[0]
        self.tls = tls
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "redis.log"
        process_logs.watch(self.log_path, "private redis-server")

    def url(self, user: str = "", password: str = "", db: int = 0) -> str:
        """A redis:// (or rediss:// with the CA) URL with the given credentials."""
        auth = f"{user}:{password}@" if (user or password) else ""
        if self.tls is None:
            return f"redis://{auth}127.0.0.1:{self.port}/{db}"
        return f"rediss://{auth}127.0.0.1:{self.port}/{db}?ssl_ca_certs={self.tls.ca}"

    def start(self) -> RedisServer:
        """Start it and wait until it accepts connections."""
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.root.mkdir(parents=True, exist_ok=True)
        ports = ["--port", str(self.port)]
        if self.tls is not None:
            ports = [
                "--port", "0", "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls.cert), "--tls-key-file", str(self.tls.key),
                "--tls-ca-cert-file", str(self.tls.ca), "--tls-auth-clients", "no",
            ]  # fmt: skip
        cmd = [binary, "--bind", "127.0.0.1", *ports, "--dir", str(self.root),
               "--save", "", "--appendonly", "no", *self.args]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log_path.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return self
            time.sleep(0.1)
        raise TimeoutError(f"redis-server on {self.port} did not start")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextlib.contextmanager
def redis_server(root: Path, *args: str, tls: TlsFiles | None = None) -> Iterator[RedisServer]:
    """A running :class:`RedisServer`, stopped on exit."""
    server = RedisServer(root, *args, tls=tls)
    try:
        yield server.start()
    finally:
        server.stop()


# Expected totals -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Expected:
    """What Redis must show for a set of events, each event id counted once."""

    weeks: dict[str, int]
    calls: dict[str, int]
    cells: dict[tuple[str, str], int]
    events: int
    #: (week, app) -> tokens, events without an app under NO_APP; empty (apps unchecked)
    #: when no event names an app
    apps: dict[tuple[str, str], int]

    @classmethod
    def of(cls, events: Iterable[UsageEvent]) -> Expected:
        """Totals of the distinct event ids of ``events`` (a repeated id counts once).

        Apps are checked only when some event names one: the expected events of some tests
        leave the app out although the pipeline counts one (an OTLP span's service.name).
        """
        weeks: dict[str, int] = {}
        calls: dict[str, int] = {}
        cells: dict[tuple[str, str], int] = {}
        apps: dict[tuple[str, str], int] = {}
        seen: set[str] = set()
        for event in events:
            if event.event_id in seen:
                continue
            seen.add(event.event_id)
            week = week_id(event.ts_ms)
            weeks[week] = weeks.get(week, 0) + event.tokens
            calls[week] = calls.get(week, 0) + event.calls
            cell = (week, event.model)
            cells[cell] = cells.get(cell, 0) + event.tokens
            app = (week, event.app or NO_APP)
            apps[app] = apps.get(app, 0) + event.tokens
        named = any(app != NO_APP for _, app in apps)
        return cls(weeks, calls, cells, len(seen), apps if named else {})


#: Boards checked by their sum: a week's country and vendor members add up to its total.
#: Which member an event lands on follows the worker's model resolution (catalog, OTLP
#: aliases, unknown vendors), so the tests hold the sums, not the members.
SUMMED_DIMENSIONS = ("country", "vendor")


async def redis_mismatches(settings: Settings, expected: Expected) -> list[str]:
    """Every week total, call count, model cell and app cell Redis does not show exactly,
    and every week whose country or vendor board does not add up to its expected total
    (empty: exact). Apps are on the app board, but for events without one: NO_APP's hash."""
    keys = RedisKeys(settings.redis_prefix)
    client = aioredis.from_url(settings.redis_url)
    try:
        pipe = client.pipeline(transaction=False)
        weeks = sorted(expected.weeks)
        cells = sorted(expected.cells)
        apps = sorted(expected.apps)
        for week in weeks:
            pipe.hmget(keys.total(week), ["tokens", "calls"])
        for week in weeks:
            for dimension in SUMMED_DIMENSIONS:
                pipe.zrange(keys.leaderboard(dimension, week), 0, -1, withscores=True)
        for week, model in cells:
            pipe.zscore(keys.leaderboard("model", week), model)
        for week, app in apps:
            if app == NO_APP:
                pipe.hget(keys.member("app", week, app), "tokens")
            else:
                pipe.zscore(keys.leaderboard("app", week), app)
        values = await pipe.execute()
    finally:
        await client.aclose()
    wrong: list[str] = []
    for week, (tokens, calls) in zip(weeks, values[: len(weeks)], strict=True):
        want = (expected.weeks[week], expected.calls[week])
        if tokens is None or calls is None or (int(tokens), int(calls)) != want:
            wrong.append(f"total {week}: tokens, calls {tokens}, {calls} != {want}")
    boards = iter(values[len(weeks) : len(weeks) * (1 + len(SUMMED_DIMENSIONS))])
    for week in weeks:
        for dimension in SUMMED_DIMENSIONS:
            board_sum = sum(int(score) for _, score in next(boards))
            if board_sum != expected.weeks[week]:
                wrong.append(f"{dimension} board {week}: sum {board_sum} != {expected.weeks[week]}")
    values = values[: len(weeks)] + values[len(weeks) * (1 + len(SUMMED_DIMENSIONS)) :]
    model_values = values[len(weeks) : len(weeks) + len(cells)]
    for cell, value in zip(cells, model_values, strict=True):
        if value is None or int(value) != expected.cells[cell]:
            wrong.append(f"model {cell}: {value} != {expected.cells[cell]}")
    for app_cell, value in zip(apps, values[len(weeks) + len(cells) :], strict=True):
        if value is None or int(float(value)) != expected.apps[app_cell]:
            wrong.append(f"app {app_cell}: {value} != {expected.apps[app_cell]}")
    return wrong


async def send_until_acknowledged(
    producer: UsageProducer,
    batch: list[UsageEvent],
    *,
    give_up_after_s: float,
    refused: Callable[[BaseException], object] = lambda exc: None,
    pause_s: float = 1.0,
) -> int:
    """Send ``batch`` with the same ids until the broker acknowledges it, as a producer must
    when a batch is refused (a request timeout while a broker is away, LeaderNotAvailable
    while it comes back); returns how many times it was refused.

    Each attempt is bounded (60 s), and after ``give_up_after_s`` the last error is raised:
    a producer that can never send again must fail the test, not hang it.
    """
    deadline = time.monotonic() + give_up_after_s
    refusals = 0
    while True:
        try:
            await asyncio.wait_for(producer.send_many(batch), 60)
            return refusals
        except (KafkaError, TimeoutError) as exc:
            refused(exc)
            if time.monotonic() > deadline:
                raise
            refusals += 1
            await asyncio.sleep(pause_s)


async def wait_for_totals(
    settings: Settings,
    expected: Expected,
    timeout_s: float,
    workers: Iterable[WorkerProcess] = (),
) -> float:
    """Wait until Redis shows ``expected`` exactly; returns the seconds it took.

    Fails at once, naming its log, when one of ``workers`` exited meanwhile (a crash).
    """
    started = time.monotonic()
    last: list[str] = []
    workers = list(workers)
    while True:
        for worker in workers:
            code = worker.proc.poll() if worker.proc is not None else None
            assert code is None, f"worker {worker.name} exited ({code}); see {worker.log_path}"
        with contextlib.suppress(OSError, aioredis.RedisError):
            last = await redis_mismatches(settings, expected)
            if not last:
                return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(
                f"Redis not exact after {timeout_s:.0f} s: {len(last)} wrong, e.g. {last[:5]}"
            )
        await asyncio.sleep(0.3)


#: Apps of make_events' events, in turn; None: an event without an app.
APPS = ("support-bot", None, "coder", "search:beta")


def make_events(tag: str, start: int, count: int, week: str = "2026-W46") -> list[UsageEvent]:
    """``count`` valid events numbered from ``start``, over five models, four apps (one of
    them none) and one week."""
    models = [
        "deepseek/deepseek-v4-flash",
        "openai/gpt-5.1",
        "qwen/qwen3-max",
        "anthropic/claude-sonnet-4.5",
        "google/gemini-3-pro",
    ]
    base = week_start_ms(week) + 3_600_000
    return [
        UsageEvent(
            event_id=f"{tag}-{i}",
            ts_ms=base + (i * 7919) % (6 * 86_400_000),
            model=models[i % len(models)],
            prompt_tokens=1000 + i % 997,
            completion_tokens=100 + i % 89,
            app=APPS[i % len(APPS)],
        )
        for i in range(start, start + count)
    ]


# ":ranker:mirror" names the ranker's load of its state topic (a random token), not state.
VOLATILE_KEYS = (":writer:", ":snapshot:at", ":week:current", ":ranker:mirror")


async def redis_view(settings: Settings) -> dict[str, object]:
    """Every key of the settings' Redis prefix with its value, but the wall-clock ones."""
    client = aioredis.from_url(settings.redis_url, decode_responses=True)
    view: dict[str, object] = {}
    try:
        async for key in client.scan_iter(match=f"{settings.redis_prefix}:*", count=1000):
            if any(mark in key for mark in VOLATILE_KEYS):
                continue
            kind = await client.type(key)
            if kind == "hash":
                view[key] = await client.hgetall(key)
            elif kind == "zset":
                view[key] = await client.zrange(key, 0, -1, withscores=True)
            elif kind == "set":
                view[key] = sorted(await client.smembers(key))
            else:
                view[key] = await client.get(key)
    finally:
        await client.aclose()
    return view


# Topics, metrics and the gateway -----------------------------------------------------------
async def published_events(settings: Settings, topic: str) -> list[dict[str, object]]:
    """The JSON payloads of a rankings or alerts topic, in no particular order."""
    return [orjson.loads(r.value) for r in await read_topic(settings, topic) if r.value]


def worker_metric(worker: WorkerProcess, name: str) -> float:
    """A counter of a running worker's /metrics (summed over labels; 0 when absent)."""
    with urllib.request.urlopen(worker.url("/metrics"), timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


@contextlib.asynccontextmanager
async def running_gateway(
    settings: Settings, *, wait_ready: bool = True, timeout_s: float = 60.0, **options: object
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The ingest gateway in-process on a real socket, with its own real producer."""
    app = build_ingest_app(settings, **options)  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        if wait_ready:

            async def ready() -> bool:
                return (await client.get("/readyz")).status == 200

            await wait_until(ready, timeout_s=timeout_s, what="gateway connected to Kafka")
        yield client


FIGURES = Path("test-output") / "reliability-figures.jsonl"


def record_figures(case: str, **figures: object) -> None:
    """Print a test's figures and append them to test-output/reliability-figures.jsonl.

    RELIABILITY.md is written from these lines (``pytest -s`` shows them too).
    """
    line = json.dumps({"case": case, **figures}, sort_keys=True, default=str)
    print(f"FIGURES {line}")
    FIGURES.parent.mkdir(exist_ok=True)
    with FIGURES.open("a") as out:
        out.write(line + "\n")


async def delete_redis_keys(redis_url: str, prefix: str) -> int:
    """Delete every Redis key under ``<prefix>:``; returns how many there were."""
    client = aioredis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        return len(keys)
    finally:
        await client.aclose()
