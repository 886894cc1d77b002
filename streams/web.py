"""A tiny aiohttp server for /healthz, /readyz and /metrics, shared by every process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.metrics import HTTP_REQUESTS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def health_routes(ready: Callable[[], bool], service: str) -> list[web.RouteDef]:
    """Liveness, readiness and Prometheus routes."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "service": service})

    async def readyz(request: web.Request) -> web.Response:
        ok = ready()
        return web.json_response(
            {"status": "ready" if ok else "starting", "service": service}, status=200 if ok else 503
        )

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics)]


async def serve_health(port: int, ready: Callable[[], bool], service: str) -> web.AppRunner | None:
    """Serve the health routes on ``port`` (negative: disabled); returns the runner."""
    if port < 0:
        return None
    app = web.Application()
    app.add_routes(health_routes(ready, service))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "0.0.0.0", port)  # probes come from outside the pod
    await site.start()
    return runner


Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


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
