"""``tokenboard ingest``: the HTTP gateway in front of the usage topic.

``POST /v1/events`` takes one event, a JSON array or NDJSON, validates every event on its own
(:func:`aggregations.events.decode_batch`) and answers per event. An event is reported
accepted only after Kafka acknowledged it. An event older than the retention before the
pipeline's event time, which the workers write to Redis, is refused as ``too_old`` here
already (:meth:`IngestGateway.watermark_ms`). When Kafka cannot be reached the whole request
gets 503 with ``Retry-After`` and no event is reported accepted; retrying it is safe because
events that reached Kafka anyway carry the same ``event_id`` and the pre-aggregator drops
duplicates.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import logging
import math
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.typedefs import Handler
from aiokafka.errors import KafkaError
from msgspec import Struct
from redis.exceptions import RedisError

from aggregations.events import InvalidEvent, Limits, UsageEvent, decode_batch, encode_event
from streams import metrics
from streams.http import ingest_schemas as schemas
from streams.http.openapi_ingest import ingest_openapi
from streams.http.otlp import otlp_routes
from streams.http.processes import run_processes
from streams.http.web import (
    PortInUse,
    ServerLimits,
    bind_listener,
    health_routes,
    internal_error_id,
    is_loopback,
    request_counter,
    run_server,
)
from streams.sdk.producer import UsageProducer
from streams.settings import Settings
from streams.store.client import connect
from streams.store.keys import RedisKeys
from streams.topics import ensure_topics

__all__ = ["DEFAULT_RATE_LIMIT", "RateLimit", "RateLimiter", "build_ingest_app", "run_ingest"]

log = logging.getLogger("tokenboard.ingest")

SERVICE = "ingest"
#: How long a request waits for Kafka's acknowledgements before answering 503. Bounded well
#: below the producer's own 30 s request timeout so clients are not left hanging.
SEND_TIMEOUT_S = 10.0
#: ``Retry-After`` seconds of a 503: about how long a broker restart or failover takes.
UNAVAILABLE_RETRY_AFTER_S = 5
CONNECT_BACKOFF_FIRST_S = 0.5
CONNECT_BACKOFF_MAX_S = 10.0
#: The pipeline's event-time watermark (for ``too_old``) is read from Redis at most this often,
#: and a read that takes longer than the timeout is given up: the workers decide then.
WATERMARK_CACHE_S = 1.0
WATERMARK_TIMEOUT_S = 0.25
WEEK_MS = 7 * 86_400_000

JSON_TYPES = frozenset(
    {"application/json", "application/cloudevents+json", "application/cloudevents-batch+json"}
)
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Per-client token bucket: ``rate`` requests per second sustained, bursts up to ``burst``.

    The defaults let one client send ~50 batch requests a second (tens of thousands of
    events) while stopping a runaway retry loop. ``max_clients`` bounds the memory.
    """

    rate: float = 50.0
    burst: int = 200
    max_clients: int = 10_000


DEFAULT_RATE_LIMIT = RateLimit()


class RateLimiter:
    """Token buckets per client id, the least recently seen client evicted first."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        # client -> (tokens left, when they were counted)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def acquire(self, client: str) -> float:
        """Take one token for ``client``: 0.0 when allowed, else the seconds until allowed."""
        now = self._clock()
        limit = self.limit
        tokens, at = self._buckets.pop(client, (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - at) * limit.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / limit.rate
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > limit.max_clients:
            # An evicted client comes back with a full bucket; it was the idlest one anyway.
            self._buckets.popitem(last=False)
        return wait


def _json(status: int, body: Struct, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=schemas.encode(body), content_type="application/json", headers=headers
    )


def _error(
    status: int, error: schemas.ErrorCode, detail: str, headers: dict[str, str] | None = None
) -> web.Response:
    return _json(status, schemas.Error(error=error, detail=detail), headers)


def _result(
    index: int, item: UsageEvent | InvalidEvent
) -> schemas.AcceptedResult | schemas.RejectedResult:
    if isinstance(item, InvalidEvent):
        return schemas.RejectedResult(
            index=index, reason=item.reason, detail=item.detail, field=item.field
        )
    return schemas.AcceptedResult(index=index, event_id=item.event_id)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a bug with a JSON 500 carrying an error id, logged with the traceback.

    The handlers answer every expected failure themselves (401, 413, 415, 429, 503 and the
    per-event rejections); an unknown path or method gets the same JSON error body.
    """
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return _error(404, "not_found", f"no route {request.path}: see /openapi.json")
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        return _error(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed on {request.path}: use {allowed}",
            {"Allow": allowed},
        )
    except web.HTTPException:
        raise
    except Exception:
        error_id = internal_error_id(log, request)
        body = schemas.InternalError(
            error="internal_error",
            detail=f"unexpected error {error_id}: whether events were accepted is unknown,"
            " retrying the request is safe",
            error_id=error_id,
        )
        return _json(500, body)


class IngestGateway:
    """State and handlers of one gateway: the producer, its connection, keys and limits."""

    def __init__(
        self,
        settings: Settings,
        producer: UsageProducer | None,
        rate_limit: RateLimit | None,
        send_timeout_s: float,
    ) -> None:
        self.settings = settings
        self._producer = producer
        self.limits = Limits(
            max_event_bytes=settings.max_event_bytes,
            retention_ms=settings.retention_weeks * WEEK_MS,
        )
        self._redis: aioredis.Redis | None = None
        self._watermark_key = RedisKeys(settings.redis_prefix).watermark
        self._watermark: int | None = None
        self._watermark_read_at = -math.inf
        self._redis_failing = False
        self.send_timeout_s = send_timeout_s
        # Digests, not keys: comparing equal-length digests leaks neither content nor length.
        self._key_digests = [hashlib.sha256(k.encode()).digest() for k in settings.api_key_set]
        self._limiter = RateLimiter(rate_limit) if rate_limit is not None else None
        self.connected = False
        self._connector: asyncio.Task[None] | None = None

    @property
    def producer(self) -> UsageProducer:
        """The producer; exists once the application started."""
        if self._producer is None:
            raise RuntimeError("the ingest application has not started")
        return self._producer

    # Lifecycle -------------------------------------------------------------------------
    async def on_startup(self, app: web.Application) -> None:
        """Connect to Kafka in the background so the gateway serves (503s) while it is down."""
        if self._producer is None:
            # aiokafka clients bind to the running loop, so the default one is made here.
            self._producer = UsageProducer(self.settings)
        self._redis = connect(self.settings)  # connects on first use
        self._connector = asyncio.create_task(self._connect())

    async def on_cleanup(self, app: web.Application) -> None:
        """Stop connecting, then flush and close the producer."""
        if self._connector is not None:
            self._connector.cancel()
            await asyncio.gather(self._connector, return_exceptions=True)
        self.connected = False
        if self._producer is not None:
            await self._producer.stop()
        if self._redis is not None:
            await self._redis.aclose()

    async def _connect(self) -> None:
        delay = CONNECT_BACKOFF_FIRST_S
        while True:
            try:
                await self.producer.start()
                break
            except (KafkaError, OSError) as exc:
                log.warning(
                    "Kafka at %s unreachable (%s), retrying in %.1f s",
                    self.settings.kafka_bootstrap,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, CONNECT_BACKOFF_MAX_S)
        try:
            # Before the first send: an auto-created usage topic would get the broker's
            # default partition count instead of TOKENBOARD_PARTITIONS.
            await ensure_topics(self.settings)
        except (KafkaError, OSError, RuntimeError) as exc:
            log.warning("could not check the topics (%s); sending anyway", exc)
        self.connected = True
        log.info("connected to Kafka at %s", self.settings.kafka_bootstrap)

    # Request checks --------------------------------------------------------------------
    def _identify(self, request: web.Request) -> tuple[str, bool]:
        """The client id for rate limiting and whether the request is authorized."""
        remote = f"ip:{request.remote or 'unknown'}"
        if not self._key_digests:
            return remote, True
        given = request.headers.get("X-API-Key", "")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            given = token.strip()
        if not given:
            return remote, False
        digest = hashlib.sha256(given.encode()).digest()
        matched = False
        # Compare against every key, without stopping early, so timing reveals nothing.
        for key_digest in self._key_digests:
            matched |= hmac.compare_digest(digest, key_digest)
        # Keyed clients share one bucket per key, wherever they connect from; the id is a
        # digest prefix so no key ever sits in memory tables or logs.
        return (f"key:{digest.hex()[:16]}", True) if matched else (remote, False)

    def _too_large(self, size: int | None) -> web.Response:
        limit = self.settings.max_request_bytes
        what = f"request body is {size} bytes" if size is not None else "request body is too large"
        return _error(413, "payload_too_large", f"{what}, the limit is {limit} bytes")

    def _unavailable(self, detail: str) -> web.Response:
        body = schemas.Error(error="kafka_unavailable", detail=detail, accepted=0)
        return _json(503, body, {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)})

    def refuse(
        self, request: web.Request
    ) -> tuple[int, schemas.ErrorCode, str, dict[str, str]] | None:
        """(status, error, detail, headers) of a client that may not send now: 429 when it
        is over its rate, 401 without a valid key; None when it may. Shared by every route
        that takes events (``/v1/events``, the OTLP receiver's ``/v1/traces``)."""
        client, authorized = self._identify(request)
        if self._limiter is not None:
            # Before the key check, so guessing keys is rate limited too.
            wait = self._limiter.acquire(client)
            if wait > 0:
                retry = {"Retry-After": str(max(1, math.ceil(wait)))}
                return 429, "rate_limited", "too many requests from this client", retry
        if not authorized:
            return (
                401,
                "unauthorized",
                "send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                {"WWW-Authenticate": 'Bearer realm="tokenboard"'},
            )
        return None

    # Handlers ---------------------------------------------------------------------------
    async def post_events(self, request: web.Request) -> web.Response:
        """``POST /v1/events``."""
        refusal = self.refuse(request)
        if refusal is not None:
            return _error(*refusal)
        if request.content_type not in JSON_TYPES | NDJSON_TYPES:
            return _error(
                415,
                "unsupported_media_type",
                f"Content-Type {request.content_type!r} is not supported: use application/json "
                "(one event or an array) or application/x-ndjson",
            )
        declared = request.content_length
        if declared is not None and declared > self.settings.max_request_bytes:
            return self._too_large(declared)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            # A chunked body without Content-Length that grew past client_max_size.
            return self._too_large(None)

        results = decode_batch(
            body,
            now_ms=time.time_ns() // 1_000_000,
            watermark_ms=await self.watermark_ms(),
            limits=self.limits,
        )
        events = [r for r in results if isinstance(r, UsageEvent)]
        if events:
            if not self.connected:
                return self._unavailable("not connected to Kafka yet; nothing was accepted")
            try:
                await asyncio.wait_for(self._send(events), self.send_timeout_s)
            except (TimeoutError, KafkaError) as exc:
                log.warning("sending %d events failed: %r", len(events), exc)
                return self._unavailable(
                    f"Kafka did not acknowledge the events ({type(exc).__name__}); "
                    "nothing was accepted, retry the request"
                )
        rejected = len(results) - len(events)
        for item in results:
            if isinstance(item, InvalidEvent):
                metrics.INGEST_REJECTED.labels(item.reason).inc()
        status = 200 if not rejected else (400 if not events else 207)
        return _json(
            status,
            schemas.IngestResponse(
                accepted=len(events),
                rejected=rejected,
                results=[_result(i, item) for i, item in enumerate(results)],
            ),
        )

    async def watermark_ms(self) -> int | None:
        """The pipeline's event-time watermark as the workers last wrote it to Redis, read at
        most once per :data:`WATERMARK_CACHE_S`; None while unknown or Redis is unreachable
        (then nothing is refused as ``too_old`` here and the workers still decide)."""
        now = time.monotonic()
        if self._redis is None or now - self._watermark_read_at < WATERMARK_CACHE_S:
            return self._watermark
        self._watermark_read_at = now  # concurrent requests keep the previous value meanwhile
        try:
            raw = await asyncio.wait_for(self._redis.get(self._watermark_key), WATERMARK_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as exc:
            if not self._redis_failing:
                log.warning("Redis unreachable (%r): too-old events are left to the workers", exc)
            self._redis_failing = True
            self._watermark = None
            return None
        if self._redis_failing:
            log.info("Redis answers again: too-old events are refused here again")
        self._redis_failing = False
        self._watermark = int(float(raw)) if raw else None
        return self._watermark

    async def _send(self, events: list[UsageEvent]) -> None:
        """Queue every event, then wait for all acknowledgements; raises the first failure."""
        records = [(e.event_id, encode_event(e)) for e in events]
        await self.producer.acknowledged(await self.producer.send_encoded(records), len(records))


def build_ingest_app(
    settings: Settings,
    producer: UsageProducer | None = None,
    *,
    rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT,
    send_timeout_s: float = SEND_TIMEOUT_S,
) -> web.Application:
    """The gateway as an aiohttp application.

    ``producer`` (default: a :class:`UsageProducer` for ``settings``, made on startup) must
    not be started: the application starts it on startup, retrying in the background while
    Kafka is unreachable, and stops it on cleanup. ``rate_limit`` None disables rate limiting.
    """
    gateway = IngestGateway(settings, producer, rate_limit, send_timeout_s)
    app = web.Application(
        client_max_size=settings.max_request_bytes,
        middlewares=[request_counter(SERVICE), errors_middleware],
    )
    document = orjson.dumps(ingest_openapi(settings))

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json")

    app.add_routes(
        [
            web.post("/v1/events", gateway.post_events),
            *otlp_routes(gateway),
            web.get("/openapi.json", openapi),
            *health_routes(lambda: gateway.connected, SERVICE),
        ]
    )
    app.on_startup.append(gateway.on_startup)
    app.on_cleanup.append(gateway.on_cleanup)
    return app


#: The one line of a port that is taken, and the banner of ``--workers N``; formatted with the
#: port (and host).
PORT_IN_USE = (
    "error: port {port} for the ingest gateway is in use (TOKENBOARD_INGEST_PORT or --port)"
)
BANNER = "gateway http://{host}:{port}/v1/events  ·  spec /openapi.json"


def run_ingest(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler: serve the gateway until SIGINT/SIGTERM.

    Without API keys it listens on 127.0.0.1 only, and refuses a non-loopback ``--host``
    unless ``--allow-anonymous`` (``TOKENBOARD_INGEST_ALLOW_ANONYMOUS=1``) says so. Slow
    clients, connections and keep-alive are bounded by the ``TOKENBOARD_HTTP_*`` limits
    (:class:`~streams.http.web.ServerLimits`).

    With ``--workers N`` (``TOKENBOARD_INGEST_WORKERS``) N processes listen on the same port
    with ``SO_REUSEPORT``; each has its own Kafka producer and answers only for the events it
    produced, so every 200 still means Kafka acknowledged them.
    """
    port = args.port if args.port is not None else settings.ingest_port
    keys = bool(settings.api_key_set)
    host = args.host if args.host is not None else ("0.0.0.0" if keys else "127.0.0.1")
    anonymous = args.allow_anonymous or settings.ingest_allow_anonymous == 1
    if not keys and not anonymous and not is_loopback(host):
        print(
            f"error: refusing to listen on {host} without API keys: set TOKENBOARD_API_KEYS, "
            "or accept events from anyone with TOKENBOARD_INGEST_ALLOW_ANONYMOUS=1 "
            "(--allow-anonymous)",
            file=sys.stderr,
        )
        return 2
    workers = args.workers if args.workers is not None else settings.ingest_workers
    if workers > 1 and not args.reuse_port:
        # The children repeat the check above with the settings alone, without the flag.
        children = settings.replace(ingest_allow_anonymous=1 if anonymous else None)
        return run_processes(
            "ingest", children, workers, port, host=host, in_use=PORT_IN_USE, banner=BANNER
        )
    try:
        listener = bind_listener(port, host, reuse_port=args.reuse_port, backlog=1024)
    except PortInUse:
        print(PORT_IN_USE.format(port=port), file=sys.stderr)
        return 2
    # Several processes write to one stream: the pid tells whose line it is.
    who = " [%(process)d]" if args.reuse_port else ""
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s %(levelname)s %(name)s{who} %(message)s"
    )
    if not keys:
        log.warning("TOKENBOARD_API_KEYS is empty: the gateway accepts events without a key")
    port = listener.getsockname()[1]  # the free port found, for port 0
    log.info("ingest gateway on http://%s:%d/v1/events (API: /openapi.json)", host, port)
    limits = ServerLimits.from_settings(settings)
    run_server(build_ingest_app(settings), listener, limits, SERVICE)
    return 0
