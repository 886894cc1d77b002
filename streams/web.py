"""A tiny aiohttp server for /healthz, /readyz and /metrics, shared by every process."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


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
