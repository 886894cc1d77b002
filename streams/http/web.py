"""HTTP plumbing shared by every server: health routes, request counting, port binding, and
the hardened serving of ``tokenboard api`` and ``tokenboard ingest``.

:func:`run_server` serves an application on a socket from :func:`bind_listener` with the
limits of :class:`ServerLimits`: a request head (request line and headers) must arrive
within ``header_timeout_s`` of its first byte (or of the connection's opening), a body within
``body_timeout_s`` of its head (else 408 and the connection is closed), an idle keep-alive
connection is closed after ``keepalive_timeout_s`` and any connection after
``keepalive_requests`` requests, and a connection beyond ``max_connections`` is answered 503
and closed at once. A connection that trickles header lines is therefore cut after
``header_timeout_s`` whatever it sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import resource
import signal
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.http.schemas import Health, encode
from streams.http.server_metrics import CONNECTIONS_CUT, CONNECTIONS_OPEN, CONNECTIONS_REFUSED
from streams.metrics import HTTP_REQUESTS
from streams.settings import Settings

__all__ = [
    "HEALTH_HOST",
    "BodyTimeout",
    "PortInUse",
    "ServerLimits",
    "bind_listener",
    "health_routes",
    "internal_error_id",
    "is_loopback",
    "on_disconnect",
    "request_counter",
    "run_server",
    "serve_health",
]

log = logging.getLogger("tokenboard.http")


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


def bind_listener(
    port: int, host: str = HEALTH_HOST, *, reuse_port: bool = False, backlog: int = 128
) -> socket.socket:
    """A listening TCP socket on ``port`` (0: any free port); :class:`PortInUse` if taken.

    Binding before the server starts lets the caller report the real port, and fail or fall
    back before anything else has started. ``reuse_port`` sets ``SO_REUSEPORT``: several
    processes that all set it listen on one port and the kernel spreads the connections
    over them (``tokenboard api --workers N``).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(exc.errno, f"port {port} is in use") from exc
        raise
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


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


# Hardened serving (tokenboard api, tokenboard ingest) --------------------------------------
@dataclass(frozen=True, slots=True)
class ServerLimits:
    """How long a client may take and how many connections a server process holds."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keepalive_timeout_s: float = 15.0
    keepalive_requests: int = 1000
    max_connections: int = 12000

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerLimits:
        """The ``TOKENBOARD_HTTP_*`` limits."""
        return cls(
            header_timeout_s=settings.http_header_timeout_s,
            body_timeout_s=settings.http_body_timeout_s,
            keepalive_timeout_s=settings.http_keepalive_timeout_s,
            keepalive_requests=settings.http_keepalive_requests,
            max_connections=settings.http_max_connections,
        )


class BodyTimeout(web.HTTPRequestTimeout):
    """The request body did not arrive within ``body_timeout_s`` of its headers.

    Raised by the handler's ``request.read()``; an HTTP exception, so that the handlers'
    error middlewares pass it on instead of logging it as a bug.
    """


#: Sent, unread, to a connection beyond ``max_connections``: nothing of it is parsed.
_FULL_BODY = b'{"error": "too many connections, retry later", "status": 503}'
_FULL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_FULL_BODY), _FULL_BODY)
)


class _Connection(asyncio.Protocol):
    """One client connection: aiohttp's protocol behind a watchdog.

    The header timer runs while the connection waits for a request head of which bytes
    arrived (or, on a new connection, from its opening): a request that reaches the handlers
    stops it. Idle keep-alive connections are aiohttp's (``keepalive_timeout``).
    """

    __slots__ = ("_guard", "_inner", "_lost", "_requests", "_timer", "_transport", "in_request")

    def __init__(self, guard: _Guard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol | None = inner
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._requests = 0
        self._lost: list[Callable[[], None]] = []
        self.in_request = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        guard = self._guard
        if len(guard.connections) >= guard.limits.max_connections:
            self._inner = None  # aiohttp never sees it
            CONNECTIONS_REFUSED.labels(guard.service).inc()
            transport.write(_FULL)
            transport.close()
            return
        assert self._inner is not None
        guard.connections[self._inner] = self
        _BY_PROTOCOL[self._inner] = self
        CONNECTIONS_OPEN.labels(guard.service).inc()
        self._arm()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if not self.in_request and self._timer is None:
            self._arm()  # the first bytes of the next request head on a kept-alive connection
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        inner, self._inner = self._inner, None
        if inner is not None:
            del self._guard.connections[inner]
            _BY_PROTOCOL.pop(inner, None)
            CONNECTIONS_OPEN.labels(self._guard.service).dec()
            inner.connection_lost(exc)
        lost, self._lost = self._lost, []
        for callback in lost:
            callback()

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    # Called by the guard's middleware around every request of this connection.
    def request_started(self) -> None:
        self.in_request = True
        self._disarm()

    def request_finished(self, response: web.StreamResponse | None) -> None:
        self.in_request = False
        self._requests += 1
        if response is not None and self._requests >= self._guard.limits.keepalive_requests:
            response.force_close()

    @property
    def service(self) -> str:
        """The server's service label."""
        return self._guard.service

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the connection closes."""
        self._lost.append(callback)

    def cut(self, reason: str) -> None:
        """Close the connection now, unflushed output dropped (a client that stalls)."""
        if self._transport is not None and not self._transport.is_closing():
            CONNECTIONS_CUT.labels(self._guard.service, reason).inc()
            self._transport.abort()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._guard.limits.header_timeout_s, self._header_late)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _header_late(self) -> None:
        self._timer = None
        if not self.in_request:
            self.cut("header_timeout")


class _Guard:
    """The connections of one server and the middleware that tells them about requests."""

    def __init__(self, limits: ServerLimits, service: str) -> None:
        self.limits = limits
        self.service = service
        #: aiohttp's protocol of each open connection -> its watchdog
        self.connections: dict[Any, _Connection] = {}

    def wrap(self, inner: asyncio.Protocol) -> _Connection:
        return _Connection(self, inner)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Outermost: stops the header timer, bounds the body's arrival, counts requests."""
        connection = self.connections.get(request.protocol)
        if connection is None:  # served by another runner (tests' TestServer)
            return await handler(request)
        connection.request_started()
        timer: asyncio.TimerHandle | None = None
        late = False
        if request.body_exists:

            def body_late() -> None:
                nonlocal late
                if not request.content.is_eof():
                    late = True
                    limit = self.limits.body_timeout_s
                    request.content.set_exception(
                        BodyTimeout(text=f"the request body did not arrive within {limit:g} s")
                    )

            timer = asyncio.get_running_loop().call_later(self.limits.body_timeout_s, body_late)
        response: web.StreamResponse | None = None
        try:
            try:
                response = await handler(request)
            except BodyTimeout as exc:
                response = web.Response(status=exc.status, text=exc.text)
            if late:
                # The rest of the body will not be read: answer, then drop the connection
                # (aiohttp would otherwise wait for the remainder).
                await _answer_and_cut(request, response, connection)
            return response
        finally:
            if timer is not None:
                timer.cancel()
            connection.request_finished(response)


#: aiohttp's protocol of every guarded connection of the process -> its watchdog.
_BY_PROTOCOL: dict[Any, _Connection] = {}


def on_disconnect(request: web.Request, callback: Callable[[], None]) -> bool:
    """Call ``callback`` once the client's connection closes (long-lived answers such as
    event streams stop at once rather than at their next write); False when the request
    is not served by :func:`run_server` (then nothing is called)."""
    connection = _BY_PROTOCOL.get(request.protocol)
    if connection is None:
        return False
    connection.on_lost(callback)
    return True


async def _answer_and_cut(
    request: web.Request, response: web.StreamResponse, connection: _Connection
) -> None:
    try:
        response.force_close()
        if not response.prepared:
            await response.prepare(request)
        await response.write_eof()
    except (ConnectionError, RuntimeError):
        pass  # the client is gone already
    CONNECTIONS_CUT.labels(connection.service, "body_timeout").inc()
    # aiohttp's own close: the answer is flushed first, and no lingering read of the rest
    # of the body (which would raise the timeout again) follows.
    request.protocol.force_close()


class _GuardedSite(web.SockSite):
    """A SockSite whose connections go through the guard."""

    __slots__ = ("_guard",)

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, guard: _Guard) -> None:
        super().__init__(runner, sock, backlog=sock_backlog(guard.limits))
        self._guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        guard = self._guard
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: guard.wrap(server()), sock=self._sock, backlog=self._backlog
        )


def sock_backlog(limits: ServerLimits) -> int:
    """Listen backlog: bursts of new connections (thousands of viewers reconnecting at once)
    queue in the kernel instead of being refused."""
    return max(128, min(limits.max_connections, 4096))


def _raise_open_files_limit() -> None:
    # Every connection is a file descriptor: the soft limit (often 1024) would refuse
    # connections long before max_connections.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def serve(
    app: web.Application,
    listener: socket.socket,
    limits: ServerLimits,
    service: str,
    *,
    shutdown_timeout_s: float = 10.0,
) -> web.AppRunner:
    """Start serving ``app`` on ``listener`` with ``limits``; the caller cleans the runner up."""
    guard = _Guard(limits, service)
    app.middlewares.insert(0, guard.middleware)
    runner = web.AppRunner(
        app,
        access_log=None,  # one line per request costs more than the request at high rates
        handle_signals=False,
        keepalive_timeout=limits.keepalive_timeout_s,
        shutdown_timeout=shutdown_timeout_s,
    )
    await runner.setup()
    await _GuardedSite(runner, listener, guard).start()
    return runner


def run_server(
    app: web.Application, listener: socket.socket, limits: ServerLimits, service: str
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, then shut down cleanly."""
    _raise_open_files_limit()

    async def main() -> None:
        runner = await serve(app, listener, limits, service)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())
