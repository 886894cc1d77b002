"""``tokenboard api``: the read-only HTTP API, its live event stream and the dashboard.

Every route is a GET over :mod:`streams.store.queries` (Redis) or a tail of the rankings and alerts
topics; no route writes anything. Any other method is answered with 405, errors are JSON
(``{"error": ..., "status": ...}``) and the document at ``/openapi.json`` describes every
response body: bodies are the Structs of :mod:`streams.http.schemas`, from which
:mod:`streams.http.openapi_read` generates the schemas.

Hot answers (leaderboards, the report, histories, the overview, country shares, week to date)
are computed once per snapshot change and served from memory with ``ETag``/``304``
(:mod:`streams.http.read_cache`); the live feed is one Kafka tail per process fanned out to
every client (:mod:`streams.http.fanout`). ``--workers N`` runs N processes on one port
(``SO_REUSEPORT``, :mod:`streams.http.processes`).

Errors are mapped explicitly (:func:`errors_middleware`):
:class:`~aggregations.errors.InvalidInput` is a 400, :class:`~aggregations.errors.NotFound` a
404, Redis or Kafka trouble a 503, and anything else a bug: a 500 whose error id is logged
with the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import orjson
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.typedefs import Handler
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from aggregations.errors import InvalidInput, NotFound
from aggregations.export import MEDIA_TYPES, check_format, encode_export, export_filename
from aggregations.totals import RANKED_DIMENSIONS
from aggregations.weeks import day_id
from streams.http import schemas
from streams.http.fanout import ClientDropped, EventHub, StreamsFull
from streams.http.openapi_read import openapi_document
from streams.http.processes import run_processes
from streams.http.read_cache import ReadCache
from streams.http.server_metrics import STREAM_REFUSED
from streams.http.web import (
    PortInUse,
    ServerLimits,
    bind_listener,
    health_routes,
    internal_error_id,
    on_disconnect,
    request_counter,
    run_server,
)
from streams.sdk import dead_letters
from streams.settings import Settings
from streams.store import queries
from streams.store.client import connect
from streams.store.keys import RedisKeys
from streams.store.names import EventNamer
from streams.store.report import weekly_report
from streams.store.state import read_state, resolve_week, week_to_date_tokens
from streams.tasks import cancel_and_wait

log = logging.getLogger("tokenboard.api")

SERVICE = "api"
STATIC_DIR = Path(__file__).resolve().parent / "static"
READ_METHODS = frozenset({"GET", "HEAD"})
MAX_ROWS = 100
MAX_BACKLOG = 500
MAX_DEAD_LETTERS = 1000
# A stream writes at least this often so that a vanished client is noticed and proxies
# do not time the connection out.
KEEPALIVE_S = 10.0
READY_PING_S = 2.0
#: How long shutdown waits for the Redis pinger to end.
PINGER_STOP_S = 5.0
#: ``Retry-After`` of a live-feed client refused at the connection cap.
STREAMS_FULL_RETRY_S = 5


class _Health:
    """Whether Redis answered the last ping (the API is useless without it)."""

    def __init__(self) -> None:
        self.ready = False


SETTINGS = web.AppKey("settings", Settings)
KEYS = web.AppKey("keys", RedisKeys)
REDIS = web.AppKey("redis", aioredis.Redis)
HEALTH = web.AppKey("health", _Health)
STOPPING = web.AppKey("stopping", asyncio.Event)
OPENAPI = web.AppKey("openapi", bytes)
CACHE = web.AppKey("cache", ReadCache)
HUB = web.AppKey("hub", EventHub)

S = TypeVar("S", bound=msgspec.Struct)


def build_api_app(settings: Settings) -> web.Application:
    """The API application: routes, middlewares, Redis client and readiness probe."""
    app = web.Application(
        middlewares=[request_counter(SERVICE), _read_only_middleware, errors_middleware]
    )
    app[SETTINGS] = settings
    app[KEYS] = RedisKeys(settings.redis_prefix)
    app[HEALTH] = _Health()
    app[STOPPING] = asyncio.Event()
    app[OPENAPI] = orjson.dumps(openapi_document())
    app[HUB] = EventHub(
        settings,
        lambda: EventNamer(app[REDIS], app[KEYS]),
        queue_limit=settings.api_stream_queue,
        max_clients=settings.api_max_streams,
    )
    app.cleanup_ctx.append(_redis_context)
    app.on_shutdown.append(_stop_streams)
    dimension = "{dimension:" + "|".join(RANKED_DIMENSIONS) + "}"
    app.add_routes(
        [
            web.get(f"/v1/leaderboard/{dimension}", _leaderboard),
            web.get(f"/v1/leaderboard/{dimension}/rolling", _rolling),
            web.get(f"/v1/export/{dimension}", _export),
            web.get("/v1/report", _report),
            # Model ids contain slashes (deepseek/deepseek-v4-flash).
            web.get("/v1/history/model/{model_id:.+}", _history("model", "model_id")),
            web.get("/v1/history/country/{code}", _history("country", "code")),
            web.get("/v1/history/vendor/{name}", _history("vendor", "name")),
            web.get("/v1/history/app/{name}", _history("app", "name")),
            web.get("/v1/week-to-date/{dimension}", _week_to_date),
            web.get("/v1/overview", _overview),
            web.get("/v1/countries/shares", _shares),
            web.get("/v1/dead-letters", _dead_letters),
            web.get("/v1/events/stream", _events_stream),
            web.get("/openapi.json", _openapi),
            web.get("/", _dashboard),
            web.get("/static/{path:.+}", _static),
            *health_routes(lambda: app[HEALTH].ready, SERVICE),
        ]
    )
    return app


#: The one line of a port that is taken, and the banner; formatted with the port (and host).
PORT_IN_USE = "error: port {port} for the read API is in use (TOKENBOARD_API_PORT or --port)"
BANNER = "dashboard http://{host}:{port}/  ·  spec /openapi.json"


def run_api(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler: serve the API and the dashboard until Ctrl-C.

    With ``--workers N`` (``TOKENBOARD_API_WORKERS``) N processes listen on the same port
    with ``SO_REUSEPORT`` and the kernel spreads connections over them; each has its own
    cache and its own tail of the live feed.
    """
    port = args.port if args.port is not None else settings.api_port
    host = args.host
    workers = args.workers if args.workers is not None else settings.api_workers
    if workers > 1 and not args.reuse_port:
        return run_processes(
            "api", settings, workers, port, host=host, in_use=PORT_IN_USE, banner=BANNER
        )
    try:
        listener = bind_listener(port, host, reuse_port=args.reuse_port, backlog=4096)
    except PortInUse:
        print(PORT_IN_USE.format(port=port), file=sys.stderr)
        return 2
    if not args.reuse_port:
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        bound = listener.getsockname()[1]
        print(f"tokenboard api: {BANNER.format(host=shown, port=bound)}", flush=True)
    run_server(build_api_app(settings), listener, ServerLimits.from_settings(settings), SERVICE)
    return 0


# Middlewares ------------------------------------------------------------------------------
@web.middleware
async def _read_only_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse every method but GET and HEAD, whatever the path: the API never writes."""
    if request.method not in READ_METHODS:
        return _error(405, f"{request.method} is not allowed: this API is read-only", allow=True)
    return await handler(request)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map errors to JSON answers: bad input 400, no data 404, outages 503, bugs 500.

    Only :class:`InvalidInput` is the client's fault: any other exception, a plain
    ``ValueError`` included, is a bug and answered with a 500 carrying an error id that is
    logged with the traceback.
    """
    try:
        return await handler(request)
    except InvalidInput as exc:
        return _error(400, str(exc))
    except NotFound as exc:
        return _error(404, str(exc))
    except RedisError as exc:
        return _error(503, f"Redis unavailable: {exc}")
    except KafkaError as exc:
        return _error(503, f"Kafka unavailable: {exc}")
    except web.HTTPNotFound:
        return _error(404, f"no route {request.path}: see /openapi.json")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason)
    except Exception:
        error_id = internal_error_id(log, request)
        body = schemas.InternalError(error="internal error", status=500, error_id=error_id)
        return _body(body, status=500)


def _error(status: int, message: str, *, allow: bool = False) -> web.Response:
    headers = {"Allow": "GET, HEAD"} if allow else None
    return _body(schemas.Error(error=message, status=status), status=status, headers=headers)


def _body(
    value: msgspec.Struct, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=schemas.encode(value),
        status=status,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )


def _json(value: Any, kind: type[S]) -> web.Response:
    """A query's dict as a ``kind`` body (converting checks it is one)."""
    return _body(schemas.to_struct(value, kind))


async def _cached(
    request: web.Request, key: Hashable, compute: Callable[[], Awaitable[Any]], kind: type[S]
) -> web.Response:
    """The answer for ``key`` from the read cache; ``compute`` runs (once for all concurrent
    requests) when the snapshot version changed since it last ran."""

    async def body() -> bytes:
        return schemas.encode(schemas.to_struct(await compute(), kind))

    return await request.app[CACHE].answer(request, key, body)


# Parameters -------------------------------------------------------------------------------
def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}, got {value}")
    return value


def _week_param(request: web.Request, default: str = "current") -> str:
    # Explicit week ids are checked by resolve_week; the two words are the only others.
    return request.query.get("week") or default


# Handlers ---------------------------------------------------------------------------------
async def _leaderboard(request: web.Request) -> web.Response:
    app = request.app
    n = _int_param(request, "n", 10, 1, MAX_ROWS)
    dimension, week = request.match_info["dimension"], _week_param(request)
    by = queries.check_order(request.query.get("by") or "tokens")
    return await _cached(
        request,
        ("leaderboard", dimension, week, n, by),
        lambda: queries.leaderboard(app[REDIS], app[KEYS], dimension, week, n, by),
        schemas.Leaderboard,
    )


async def _export(request: web.Request) -> web.Response:
    """Every ranked member of a dimension in one week, as a download (aggregations.export)."""
    app = request.app
    fmt = check_format(request.query.get("format") or "csv")
    dimension, week = request.match_info["dimension"], _week_param(request)
    # The week is resolved first: the file name and the cache key name the week id, and
    # "current" moves from week to week.
    week_id = await resolve_week(app[REDIS], app[KEYS], week)

    async def body() -> bytes:
        board = await queries.leaderboard(app[REDIS], app[KEYS], dimension, week_id, None)
        return encode_export(board, fmt)

    disposition = f'attachment; filename="{export_filename(dimension, week_id, fmt)}"'
    headers = {"Content-Type": MEDIA_TYPES[fmt], "Content-Disposition": disposition}
    return await app[CACHE].answer(request, ("export", dimension, week_id, fmt), body, headers)


async def _rolling(request: web.Request) -> web.Response:
    app = request.app
    days = _int_param(request, "days", 7, 1, queries.MAX_ROLLING_DAYS)
    n = _int_param(request, "n", 10, 1, MAX_ROWS)
    end = request.query.get("end") or None
    dimension = request.match_info["dimension"]
    return await _cached(
        request,
        ("rolling", dimension, end, days, n),
        lambda: queries.rolling_leaderboard(app[REDIS], app[KEYS], dimension, end, days, n),
        schemas.RollingLeaderboard,
    )


async def _report(request: web.Request) -> web.Response:
    app = request.app
    top = _int_param(request, "top", app[SETTINGS].top_n, 1, MAX_ROWS)
    week = _week_param(request, "last")
    return await _cached(
        request,
        ("report", week, top),
        lambda: weekly_report(app[REDIS], app[KEYS], week, top),
        schemas.Report,
    )


def _history(dimension: str, param: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        member = request.match_info[param]
        if dimension == "country":
            member = member.upper()
        app = request.app
        return await _cached(
            request,
            ("history", dimension, member),
            lambda: queries.history(app[REDIS], app[KEYS], dimension, member),
            schemas.History,
        )

    return handler


async def _week_to_date(request: web.Request) -> web.Response:
    app = request.app
    dimension = request.match_info["dimension"]
    if dimension not in (*RANKED_DIMENSIONS, "total"):
        raise NotFound(f"unknown dimension {dimension!r}")
    member = "all" if dimension == "total" else request.query.get("member", "")
    if not member:
        raise InvalidInput("member is required for a dimension other than total")
    if dimension == "country":
        member = member.upper()
    asked = request.query.get("day")

    async def totals() -> dict[str, object]:
        day = asked
        if day is None:
            watermark = (await read_state(app[REDIS], app[KEYS])).watermark_ms
            if not watermark:
                raise NotFound("no data yet")
            day = day_id(watermark)
        return await week_to_date_tokens(app[REDIS], app[KEYS], dimension, member, day)

    return await _cached(
        request, ("week-to-date", dimension, member, asked), totals, schemas.WeekToDate
    )


async def _overview(request: web.Request) -> web.Response:
    app = request.app
    return await _cached(
        request, ("overview",), lambda: queries.overview(app[REDIS], app[KEYS]), schemas.Overview
    )


async def _shares(request: web.Request) -> web.Response:
    app = request.app
    # Checked before the cache: a bad value is a 400 whatever the weeks are.
    last = _int_param(request, "weeks", 0, 1, 520) if request.query.get("weeks") else None

    async def shares() -> dict[str, Any]:
        weeks = (await read_state(app[REDIS], app[KEYS])).weeks
        chosen = weeks[-last:] if last is not None else weeks
        return await queries.country_shares(app[REDIS], app[KEYS], chosen)

    return await _cached(request, ("shares", last), shares, schemas.CountryShares)


async def _dead_letters(request: web.Request) -> web.Response:
    """The newest rejected events (streams.sdk.dead_letters reads the topic, each source once)."""
    since = request.query.get("since") or None
    since_ms = dead_letters.parse_since(since, time.time_ns() // 1_000_000) if since else None
    reason = dead_letters.check_reason(request.query.get("reason") or None)
    limit = _int_param(request, "limit", dead_letters.DEFAULT_LIMIT, 1, MAX_DEAD_LETTERS)
    page = await dead_letters.read_dead_letters(
        request.app[SETTINGS], since_ms=since_ms, reason=reason, limit=limit
    )
    body = page.as_dict(since_ms=since_ms, reason=reason, limit=limit)
    return _json(body, schemas.DeadLetters)


async def _openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json", charset="utf-8")


async def _dashboard(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def _static(request: web.Request) -> web.FileResponse:
    # Checked here rather than by add_static, whose 404 is decided after the middlewares ran
    # and so could not be a JSON error.
    target = (STATIC_DIR / request.match_info["path"]).resolve()
    if not target.is_relative_to(STATIC_DIR) or not target.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(target)


async def _events_stream(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: one ``data: <json>`` message per ranking change or alert.

    The first message is ``event: ready``: from then on every published event reaches this
    client. Each payload is the event as published plus ``name`` (the display name of its
    ``member`` or alert ``subject``, which keep the id) and ``text`` (the line ``tokenboard
    watch`` prints): :meth:`streams.store.names.EventNamer.payload`. Every client of the
    process shares one tail of the topics (:class:`~streams.http.fanout.EventHub`); a client
    more than ``TOKENBOARD_API_STREAM_QUEUE`` events behind is disconnected, and beyond
    ``TOKENBOARD_API_MAX_STREAMS`` clients a new one gets 503 with ``Retry-After``.
    """
    app = request.app
    backlog = _int_param(request, "backlog", 0, 0, MAX_BACKLOG)
    hub = app[HUB]
    try:
        # Starts the tail on first use, before answering: an unreachable broker is a 503,
        # not a silent stream.
        client, history = await hub.subscribe(backlog, request.transport)
    except StreamsFull:
        STREAM_REFUSED.inc()
        return _body(
            schemas.Error(
                error=f"this process serves its maximum of {hub.max_clients} live-feed "
                "clients (TOKENBOARD_API_MAX_STREAMS); retry later",
                status=503,
            ),
            status=503,
            headers={"Retry-After": str(STREAMS_FULL_RETRY_S)},
        )
    # A client that goes away is noticed at once rather than at the next keep-alive write.
    on_disconnect(request, client.end)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx would otherwise hold messages back
        }
    )
    try:
        await response.prepare(request)
        await response.write(b"event: ready\ndata: {}\n\n" + b"".join(history))
        while not app[STOPPING].is_set():
            data = await client.next(KEEPALIVE_S)
            if data == b"":
                break  # ended: shutdown, the client left, or the upstream tail failed
            await response.write(data if data is not None else b": keep-alive\n\n")
    except (ConnectionError, ClientDropped):
        pass  # the browser went away, or fell too far behind; nothing is owed to anyone
    finally:
        hub.unsubscribe(client)
    return response


# Lifecycle --------------------------------------------------------------------------------
async def _redis_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    client = connect(settings)
    app[REDIS] = client
    app[CACHE] = ReadCache(
        client,
        app[KEYS],
        check_s=settings.api_cache_check_ms / 1000,
        max_age_s=settings.api_cache_max_age_ms / 1000,
    )
    pinger = asyncio.create_task(_ping_forever(client, app[HEALTH]))
    yield
    # One cancel() can be lost in a Redis command and the pinger would run on (streams/tasks.py).
    await cancel_and_wait([pinger], PINGER_STOP_S)
    await app[HUB].stop()
    await client.aclose()


async def _ping_forever(client: aioredis.Redis, health: _Health) -> None:
    while True:
        try:
            health.ready = bool(await client.ping())
        except (RedisError, OSError):
            health.ready = False
        await asyncio.sleep(READY_PING_S)


async def _stop_streams(app: web.Application) -> None:
    # Open event streams would otherwise hold the shutdown until its timeout.
    app[STOPPING].set()
    await app[HUB].stop()
