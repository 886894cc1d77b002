"""Security: Kafka SASL/SCRAM and TLS, Redis passwords/ACL users/TLS, API keys, secrets in logs,
the read API's lack of write routes, and the gateway's request limits.

The secured broker is private to this module (``private_stack.PrivateStack`` with
SASL_PLAINTEXT, SSL and SASL_SSL listeners next to its PLAINTEXT one); the secured
redis-servers are private to their tests. Everything else uses the shared stack.
"""

from __future__ import annotations

import ast
import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from aiokafka.errors import KafkaConnectionError, KafkaError
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import to_credentials
from redis.exceptions import AuthenticationError, ResponseError

from aggregations.events import UsageEvent, encode_event
from aggregations.scenario import Scenario, replay_events
from streams.dev.stack import KafkaListener, KafkaSecurity
from streams.dev.workerproc import reserve_ports
from streams.http.api import build_api_app
from streams.http.ingest import RateLimit, build_ingest_app
from streams.sdk.producer import SyncUsageProducer, UsageProducer
from streams.sdk.subscriber import subscribe
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker.app import _faust_credentials
from tests.integration.kafka_read import read_topic, read_usage_events
from tests.integration.private_stack import (
    REPO,
    Expected,
    PrivateStack,
    TlsFiles,
    make_events,
    make_tls_files,
    record_figures,
    redis_server,
    running_gateway,
    wait_for_totals,
    wait_until,
)
from tests.integration.processes import WorkerProcess

# One worker runs the module: its fixture starts one private secured broker for all tests.
pytestmark = pytest.mark.xdist_group("secure-kafka")

SCRAM_USER = "tokenboard"
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class SecureBroker:
    """The module's broker: where each secured listener is, the SCRAM password, the CA."""

    ports: dict[str, int]
    password: str
    tls: TlsFiles

    def settings(
        self, base: Settings, protocol: str, *, password: str | None = None, cafile: str = ""
    ) -> Settings:
        """``base`` pointed at the listener of ``protocol`` with the client settings it needs."""
        sasl = protocol.startswith("SASL")
        return base.replace(
            kafka_bootstrap=f"127.0.0.1:{self.ports[protocol]}",
            kafka_security_protocol=protocol,
            kafka_sasl_mechanism="SCRAM-SHA-512" if sasl else "",
            kafka_sasl_username=SCRAM_USER if sasl else "",
            kafka_sasl_password=(self.password if password is None else password) if sasl else "",
            kafka_ssl_cafile=cafile or (str(self.tls.ca) if "SSL" in protocol else ""),
        )


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """A private broker with SCRAM-SHA-512 (SASL_PLAINTEXT, SASL_SSL) and TLS listeners."""
    root = tmp_path_factory.mktemp("secure-kafka")
    tls = make_tls_files(root / "tls")
    password = "scram-" + secrets.token_urlsafe(12)
    sasl, ssl, sasl_ssl = reserve_ports(3)
    ports = {"SASL_PLAINTEXT": sasl, "SSL": ssl, "SASL_SSL": sasl_ssl}
    security = KafkaSecurity(
        listeners=tuple(KafkaListener(p, port) for p, port in ports.items()),
        scram_users=((SCRAM_USER, password),),
        keystore_pem=str(tls.keystore),
    )
    stack = PrivateStack(root / "stack", Settings(), services=("kafka",), security=security)
    with stack:
        yield SecureBroker(ports, password, tls)


@pytest.fixture
def log_text(tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Everything any logger writes during the test, at every level."""
    path = tmp_path / "all.log"
    handler = logging.FileHandler(path)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)

    def text() -> str:
        handler.flush()
        return path.read_text(errors="replace")

    try:
        yield text
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


def now_events(prefix: str, count: int) -> list[UsageEvent]:
    """Valid events of the last hour."""
    now = time.time_ns() // 1_000_000
    return [
        UsageEvent(f"{prefix}-{i}", now - 60_000 - i, "openai/gpt-5.1", 100 + i, 10)
        for i in range(count)
    ]


# Kafka: configuration --------------------------------------------------------------------
CLIENT_CLASSES = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient"}


def test_every_kafka_client_takes_the_shared_security_options() -> None:
    """Every aiokafka client in streams/ gets **settings.kafka_client_options() (SASL/TLS)."""
    unsecured: list[str] = []
    clients = 0
    for path in sorted((REPO / "streams").rglob("*.py")):
        if path.name == "stack.py":  # probes its own PLAINTEXT listener on purpose
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name not in CLIENT_CLASSES:
                continue
            clients += 1
            spread = [
                k.value
                for k in node.keywords
                if k.arg is None
                and isinstance(k.value, ast.Call)
                and getattr(k.value.func, "attr", "") == "kafka_client_options"
            ]
            if not spread:
                unsecured.append(f"{path.name}:{node.lineno} {name}")
    assert clients >= 7
    assert unsecured == []


@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [("PLAINTEXT", ""), ("SASL_PLAINTEXT", "SCRAM-SHA-512"), ("SSL", ""), ("SASL_SSL", "PLAIN")],
)
def test_faust_and_aiokafka_clients_get_the_same_security(
    protocol: str, mechanism: str, tmp_path: Path
) -> None:
    """Faust and aiokafka clients get the same protocol, mechanism and credentials."""
    cafile = ""
    if "SSL" in protocol:
        cafile = str(make_tls_files(tmp_path).ca)
    settings = Settings(
        kafka_security_protocol=protocol,
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="user" if mechanism else "",
        kafka_sasl_password="pw" if mechanism else "",
        kafka_ssl_cafile=cafile,
    )
    faust = dict(credentials_to_aiokafka_auth(to_credentials(_faust_credentials(settings))))
    aiokafka = settings.kafka_client_options()
    assert faust["security_protocol"] == aiokafka["security_protocol"] == protocol
    for key in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password"):
        assert faust.get(key) == aiokafka.get(key)
    assert ("ssl_context" in aiokafka) == ("SSL" in protocol)
    assert (faust.get("ssl_context") is not None) == ("SSL" in protocol)


# Kafka: against the secured broker ---------------------------------------------------------
@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SSL", "SASL_SSL"])
async def test_producers_admin_and_consumers_work_through_secured_listeners(
    settings: Settings, secure_broker: SecureBroker, protocol: str
) -> None:
    """Admin, async/sync SDK producers and a consumer work through SCRAM and TLS listeners."""
    s = secure_broker.settings(settings, protocol)
    created = await ensure_topics(s)
    assert s.usage_topic in created
    batch = now_events(f"{protocol}-async", 50)
    async with UsageProducer(s) as producer:
        assert await producer.send_many(batch) == 50

    def send_sync() -> int:
        with SyncUsageProducer(s) as producer:
            return producer.send_many(now_events(f"{protocol}-sync", 5))

    assert await asyncio.to_thread(send_sync) == 5
    produced = await read_usage_events(s)
    assert set(produced) == {e.event_id for e in batch + now_events(f"{protocol}-sync", 5)}


@pytest.mark.parametrize(
    ("protocol", "change"),
    [
        ("SASL_PLAINTEXT", {"kafka_sasl_password": "wrong-password"}),
        ("SASL_PLAINTEXT", {"kafka_sasl_username": "nobody"}),
        ("SASL_SSL", {"kafka_sasl_password": "wrong-password"}),
        ("SASL_PLAINTEXT", {"kafka_sasl_mechanism": "SCRAM-SHA-256"}),
    ],
    ids=["wrong-password", "unknown-user", "wrong-password-tls", "wrong-mechanism"],
)
async def test_wrong_sasl_credentials_are_refused(
    settings: Settings,
    secure_broker: SecureBroker,
    protocol: str,
    change: dict[str, str],
    log_text: Callable[[], str],
) -> None:
    """Wrong SCRAM credentials or mechanism are refused; the reason is logged, the password not."""
    s = secure_broker.settings(settings, protocol).replace(**change)
    producer = UsageProducer(s)
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(producer.start(), 60)
    await producer.stop()
    with pytest.raises(KafkaError):
        await asyncio.wait_for(ensure_topics(s), 60)
    text = log_text()
    assert "Authentication failed" in text or "UnsupportedSaslMechanism" in text
    assert secure_broker.password not in text and "wrong-password" not in text


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
async def test_tls_refuses_a_broker_signed_by_another_ca(
    settings: Settings, secure_broker: SecureBroker, protocol: str, tmp_path: Path
) -> None:
    """A client trusting another CA (or only the system CAs) does not talk to the broker."""
    other = make_tls_files(tmp_path / "other")
    for cafile in (str(other.ca), ""):
        s = secure_broker.settings(settings, protocol).replace(kafka_ssl_cafile=cafile)
        producer = UsageProducer(s)
        with pytest.raises(KafkaConnectionError):
            await asyncio.wait_for(producer.start(), 60)
        await producer.stop()


async def test_plaintext_client_gets_nothing_from_a_sasl_listener(
    settings: Settings, secure_broker: SecureBroker
) -> None:
    """A PLAINTEXT client on the SASL listener is refused (no metadata, no topics)."""
    s = settings.replace(kafka_bootstrap=f"127.0.0.1:{secure_broker.ports['SASL_PLAINTEXT']}")
    producer = UsageProducer(s)
    with pytest.raises(KafkaError):
        await asyncio.wait_for(producer.start(), 60)
    await producer.stop()


@pytest.mark.slow
async def test_worker_and_gateway_over_sasl_scram(
    settings: Settings,
    secure_broker: SecureBroker,
    seed_scenario: Scenario,
    log_text: Callable[[], str],
) -> None:
    """Worker and gateway over SASL/SCRAM: exact totals, dead letters, no password logged."""
    s = secure_broker.settings(settings, "SASL_PLAINTEXT")
    await ensure_topics(s)
    worker = WorkerProcess(s, "sasl").start()
    try:
        await asyncio.to_thread(worker.wait_ready, 90)
        events = list(replay_events(seed_scenario, 2))
        async with UsageProducer(s) as producer:
            await producer.send_many(events)
            await producer.send_and_wait(
                UsageEvent("bad-1", 1_790_000_000_000, "m", -1, 0)  # a negative count
            )
        http = now_events("http", 20)
        async with running_gateway(s) as client:
            body = orjson.dumps([orjson.loads(encode_event(e)) for e in http])
            response = await client.post("/v1/events", data=body, headers=JSON)
            assert response.status == 200
        expected = Expected.of(events + http)
        took = await wait_for_totals(s, expected, 120, [worker])

        async def dead_letter() -> list[str]:
            records = await read_topic(s, s.dead_letter_topic)
            return [dict(r.headers)["reason"].decode() for r in records]

        reasons = await wait_until(dead_letter, timeout_s=30, what="a dead letter over SASL")

        async def first_change() -> dict[str, Any] | None:
            async def one() -> dict[str, Any]:
                events = cast(
                    AsyncGenerator[dict[str, Any], None],
                    subscribe(s, ("rankings",), from_beginning=True),
                )
                try:
                    async for event in events:
                        return event
                finally:
                    await events.aclose()
                raise AssertionError("the subscription ended")

            return await asyncio.wait_for(one(), 10)

        change = await wait_until(first_change, timeout_s=60, what="a ranking change over SASL")
    finally:
        worker.stop()
    worker_log = worker.log_path.read_text(errors="replace")
    record_figures(
        "security_worker_sasl_scram",
        events_sent=len(events) + len(http) + 1,
        events_counted=expected.events,
        dead_lettered=len(reasons),
        lost=0,
        exact_after_s=round(took, 1),
    )
    assert reasons == ["negative_count"]
    assert change["type"] == "ranking_change"
    assert secure_broker.password not in worker_log
    assert secure_broker.password not in log_text()


async def test_worker_with_a_wrong_kafka_password_fails_clearly(
    settings: Settings, secure_broker: SecureBroker
) -> None:
    """A worker with a wrong SCRAM password exits non-zero, says why, and logs no password."""
    wrong = "not-the-" + secrets.token_hex(6)
    s = secure_broker.settings(settings, "SASL_PLAINTEXT", password=wrong)
    worker = WorkerProcess(s, "wrongpw").start()
    assert worker.proc is not None
    try:
        code = await asyncio.to_thread(worker.proc.wait, 90)
    finally:
        worker.stop()
    text = worker.log_path.read_text(errors="replace")
    assert code != 0
    assert "Authentication failed" in text
    assert wrong not in text and secure_broker.password not in text


# Redis -------------------------------------------------------------------------------------
ACL_USER = "tbworker"


def acl_arguments(prefix: str, password: str, admin_password: str) -> tuple[str, ...]:
    """redis-server arguments: a default-user password and a least-privilege ACL user that
    may touch only its own prefix and no dangerous command."""
    return (
        "--requirepass", admin_password,
        "--user", ACL_USER, "on", f">{password}", f"~{prefix}:*", "&*", "+@all", "-@dangerous",
    )  # fmt: skip


@pytest.mark.slow
async def test_worker_writes_snapshots_with_an_acl_user_and_password(
    settings: Settings, tmp_path: Path, seed_scenario: Scenario
) -> None:
    """A worker using a least-privilege Redis ACL user writes exact snapshots, logs no password."""
    password, admin = "u-" + secrets.token_urlsafe(10), "a-" + secrets.token_urlsafe(10)
    with redis_server(
        tmp_path / "redis", *acl_arguments(settings.redis_prefix, password, admin)
    ) as server:
        anonymous = aioredis.from_url(server.url())
        with pytest.raises(AuthenticationError):
            await anonymous.ping()
        await anonymous.aclose()
        admin_client = aioredis.from_url(server.url(password=admin))
        assert await admin_client.ping()
        await admin_client.aclose()
        s = settings.replace(redis_url=server.url(ACL_USER, password))
        acl_client = aioredis.from_url(s.redis_url)
        with pytest.raises(ResponseError, match="no permissions"):
            await acl_client.set("elsewhere:key", 1)  # outside its key pattern
        await acl_client.aclose()
        await ensure_topics(s)
        worker = WorkerProcess(s, "acl").start()
        try:
            await asyncio.to_thread(worker.wait_ready, 90)
            events = list(replay_events(seed_scenario, 2))
            async with UsageProducer(s) as producer:
                await producer.send_many(events)
            await wait_for_totals(s, Expected.of(events), 120, [worker])
        finally:
            worker.stop()
    text = worker.log_path.read_text(errors="replace")
    assert password not in text and admin not in text


@pytest.mark.slow
async def test_worker_over_tls_everywhere(
    settings: Settings, secure_broker: SecureBroker, tmp_path: Path
) -> None:
    """Kafka SASL_SSL and Redis TLS with a password: the worker counts exactly, logs no secret."""
    tls = make_tls_files(tmp_path / "redis-tls")
    password = "tls-" + secrets.token_urlsafe(10)
    with redis_server(tmp_path / "redis", "--requirepass", password, tls=tls) as server:
        s = secure_broker.settings(settings, "SASL_SSL").replace(
            redis_url=server.url(password=password)
        )
        plain = aioredis.from_url(f"redis://:{password}@127.0.0.1:{server.port}/0")
        with pytest.raises((OSError, aioredis.ConnectionError)):
            await asyncio.wait_for(plain.ping(), 10)
        await plain.aclose()
        await ensure_topics(s)
        worker = WorkerProcess(s, "tls").start()
        try:
            await asyncio.to_thread(worker.wait_ready, 90)
            events = make_events("tls", 0, 2000)
            async with UsageProducer(s) as producer:
                await producer.send_many(events)
            took = await wait_for_totals(s, Expected.of(events), 120, [worker])
        finally:
            worker.stop()
    text = worker.log_path.read_text(errors="replace")
    record_figures(
        "security_worker_tls_everywhere",
        events_sent=len(events),
        events_counted=len(events),
        lost=0,
        exact_after_s=round(took, 1),
    )
    assert password not in text and secure_broker.password not in text


async def test_wrong_redis_password_fails_clearly_without_leaking_it(
    settings: Settings, tmp_path: Path
) -> None:
    """A wrong Redis password is refused and reported by the worker; no password is logged."""
    password, wrong = "p-" + secrets.token_urlsafe(10), "w-" + secrets.token_urlsafe(10)
    with redis_server(tmp_path / "redis", "--requirepass", password) as server:
        client = aioredis.from_url(server.url(password=wrong))
        with pytest.raises(AuthenticationError):
            await client.ping()
        await client.aclose()
        s = settings.replace(redis_url=server.url(password=wrong))
        await ensure_topics(s)
        worker = WorkerProcess(s, "badredis").start()
        try:

            async def complained() -> bool:
                text = worker.log_path.read_text(errors="replace")
                return "AuthenticationError" in text or "WRONGPASS" in text

            await wait_until(complained, timeout_s=90, what="the worker reports the bad password")
        finally:
            worker.stop()
    text = worker.log_path.read_text(errors="replace")
    assert password not in text and wrong not in text


def test_settings_repr_hides_kafka_password_and_api_keys() -> None:
    """repr(Settings) (tracebacks, debug logs) shows neither the SASL password nor API keys."""
    settings = Settings(kafka_sasl_password="sasl-secret", api_keys="key-one,key-two")
    text = repr(settings)
    assert "sasl-secret" not in text and "key-one" not in text


def test_settings_repr_hides_the_redis_password() -> None:
    """repr(Settings) does not show the password of TOKENBOARD_REDIS_URL."""
    settings = Settings(redis_url="redis://user:redis-secret@127.0.0.1:6379/0")
    assert "redis-secret" not in repr(settings)


# Ingest API keys, limits, logs -------------------------------------------------------------
async def test_api_keys_are_compared_in_constant_time(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """API keys: one fixed-size digest comparison per configured key, whatever key is sent."""
    keys = ["alpha-key-0001", "bravo-key-0002", "charlie-key-0003"]
    s = settings.replace(api_keys=",".join(keys))
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr("streams.http.ingest.hmac.compare_digest", recording)
    attempts = [
        (keys[0], 200),
        (keys[2], 200),
        ("alpha-key-0009", 401),  # same length, last byte differs
        ("a", 401),
        ("x" * 4096, 401),
    ]
    async with running_gateway(s, rate_limit=None) as client:
        for key, status in attempts:
            calls.clear()
            response = await client.post(
                "/v1/events", data=b"[]", headers={**JSON, "X-API-Key": key}
            )
            assert response.status == status
            assert calls == [(32, 32)] * len(keys), key


async def test_gateway_logs_no_key_and_no_kafka_password(
    settings: Settings, secure_broker: SecureBroker, log_text: Callable[[], str]
) -> None:
    """The gateway over SASL with API keys logs neither a key nor the SASL password."""
    key = "ingest-" + secrets.token_urlsafe(12)
    s = secure_broker.settings(settings, "SASL_PLAINTEXT").replace(api_keys=key)
    await ensure_topics(s)
    async with running_gateway(s) as client:
        ok = await client.post(
            "/v1/events",
            data=orjson.dumps([orjson.loads(encode_event(e)) for e in now_events("log", 3)]),
            headers={**JSON, "Authorization": f"Bearer {key}"},
        )
        assert ok.status == 200
        for header in ({"X-API-Key": key + "x"}, {"Authorization": f"Bearer {key[:-1]}"}):
            assert (
                await client.post("/v1/events", data=b"[]", headers={**JSON, **header})
            ).status == 401
    text = log_text()
    assert "connected to Kafka" in text  # the capture works
    assert key not in text and key[:-1] not in text
    assert secure_broker.password not in text


@pytest.fixture
async def api_client(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    """The read API in-process on the shared Redis."""
    async with TestClient(TestServer(build_api_app(settings))) as client:
        yield client


SAMPLE_PARAMETERS = {
    "dimension": "model",
    "model_id": "deepseek/deepseek-v4-flash",
    "code": "CN",
    "name": "DeepSeek",
    "path": "dashboard.js",
}


async def test_read_api_has_no_write_route(api_client: TestClient[Any, Any]) -> None:
    """Every read API route is GET/HEAD only; any write method gets 405, Allow: GET, HEAD."""
    app = cast(TestServer, api_client.server).app
    paths: list[str] = []
    for route in app.router.routes():
        assert route.method in {"GET", "HEAD"}, (route.method, route.resource)
        resource = route.resource
        assert resource is not None
        info = resource.get_info()
        template = info.get("formatter") or info.get("path") or ""
        paths.append(template.format(**SAMPLE_PARAMETERS))
    assert len(set(paths)) >= 12
    for path in [*sorted(set(paths)), "/v1/events", "/nowhere"]:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            response = await api_client.request(method, path, data=b"{}", headers=JSON)
            assert response.status == 405, (method, path)
            assert response.headers["Allow"] == "GET, HEAD"


async def test_default_gateway_limits_request_size(settings: Settings) -> None:
    """By default a body one byte above 8 MiB, declared or chunked, gets 413."""
    limit = settings.max_request_bytes
    body = b"[" + b" " * (limit - 1) + b"]"
    assert len(body) == limit + 1

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1 << 20):
            yield body[start : start + (1 << 20)]

    app = build_ingest_app(settings)
    async with TestClient(TestServer(app)) as client:
        for data in (body, chunks()):
            response = await client.post("/v1/events", data=data, headers=JSON)
            assert response.status == 413
            assert (await response.json())["error"] == "payload_too_large"


async def test_default_gateway_rate_limits_clients_and_key_guessing(settings: Settings) -> None:
    """By default a client guessing API keys gets 429 with Retry-After after a burst of 200."""
    assert (RateLimit().rate, RateLimit().burst) == (50.0, 200)
    app = build_ingest_app(settings.replace(api_keys="the-real-key"))
    async with TestClient(TestServer(app)) as client:
        statuses: list[int] = []
        # In-process requests come much faster than the 50/s refill: the burst runs out.
        while 429 not in statuses and len(statuses) < 5000:
            response = await client.post(
                "/v1/events", data=b"[]", headers={**JSON, "X-API-Key": f"guess-{len(statuses)}"}
            )
            statuses.append(response.status)
        assert statuses[-1] == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert (await response.json())["error"] == "rate_limited"
        assert len(statuses) > 200 and set(statuses[:-1]) == {401}
