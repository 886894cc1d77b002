"""A tiny aiohttp server for /healthz, /readyz and /metrics, shared by every process."""

from __future__ import annotations

import errno
import logging
import socket
import uuid
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.http.schemas import Health, encode
from streams.metrics import HTTP_REQUESTS

__all__ = [
    "HEALTH_HOST",
    "PortInUse",
    "bind_listener",
    "health_routes",
    "internal_error_id",
    "request_counter",
    "serve_health",
]


def health_routes(ready: Callable[[], bool], service: str) -> list[web.RouteDef]:
    """Liveness, readiness and Prometheus routes."""

    def health(status: str, code: int = 200) -> web.Response:
        body = encode(Health(status=status, service=service))
        return web.Response(
            body=body, status=code, content_type="application/json", charset="utf-8"
        )

    async def healthz(request: web.Request) -> web.Response:
        return health("ok")

    async def readyz(request: web.Request) -> web.Response:
        ok = ready()
        return health("ready", 200) if ok else health("starting", 503)

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics)]


class PortInUse(OSError):
    """The port a server was told to listen on is taken by another process."""


#: Probes and scrapers come from outside the pod.
HEALTH_HOST = "0.0.0.0"


def bind_listener(port: int, host: str = HEALTH_HOST) -> socket.socket:
    """A listening TCP socket on ``port`` (0: any free port); :class:`PortInUse` if taken.

    Binding before the server starts lets the caller report the real port, and fail or fall
    back before anything else has started.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(exc.errno, f"port {port} is in use") from exc
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve_health(
    listener: socket.socket | None, ready: Callable[[], bool], service: str
) -> web.AppRunner | None:
    """Serve the health routes on a socket from :func:`bind_listener` (None: disabled)."""
    if listener is None:
        return None
    app = web.Application()
    app.add_routes(health_routes(ready, service))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, listener).start()
    return runner


def internal_error_id(log: logging.Logger, request: web.Request) -> str:
    """Log the exception being handled with a new error id, and return the id.

    Call it from an ``except`` block: the traceback goes to ``log``, the id to the client,
    which can then quote it.
    """
    error_id = uuid.uuid4().hex
    log.exception("error %s: %s %s failed", error_id, request.method, request.path)
    return error_id


def request_counter(service: str) -> Middleware:
    """Middleware counting every request of ``service`` by route template and status."""

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            resource = request.match_info.route.resource
            # Unmatched paths share one label: arbitrary URLs must not create new time series.
            route = resource.canonical if resource is not None else "unmatched"
            HTTP_REQUESTS.labels(service, route, str(status)).inc()

    return count
