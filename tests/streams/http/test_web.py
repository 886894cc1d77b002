"""The shared HTTP helpers of streams.http.web: listening sockets and health routes."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.http.web import PortInUse, bind_listener, health_routes

LOCAL = "127.0.0.1"


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A local port on which another socket is listening."""
    with socket.socket() as other:
        other.bind((LOCAL, 0))
        other.listen(1)
        yield other.getsockname()[1]


def test_port_zero_binds_a_free_port_and_listens() -> None:
    """Port 0 gets a real free port on the given host, already listening and non-blocking."""
    sock = bind_listener(0, LOCAL)
    try:
        host, port = sock.getsockname()
        assert host == LOCAL and port > 0
        assert sock.getblocking() is False
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        with socket.create_connection((LOCAL, port), timeout=5):
            pass  # a listening socket accepts the connection into its backlog
    finally:
        sock.close()


def test_an_explicit_free_port_is_bound_as_given() -> None:
    """A free port asked for by number is the port bound."""
    probe = bind_listener(0, LOCAL)
    port = probe.getsockname()[1]
    probe.close()
    sock = bind_listener(port, LOCAL)
    try:
        assert sock.getsockname() == (LOCAL, port)
    finally:
        sock.close()


def test_a_taken_port_raises_port_in_use(taken_port: int) -> None:
    """A port another socket listens on raises PortInUse (an OSError with EADDRINUSE)."""
    with pytest.raises(PortInUse) as caught:
        bind_listener(taken_port, LOCAL)
    assert isinstance(caught.value, OSError)
    assert caught.value.errno == errno.EADDRINUSE
    assert str(taken_port) in str(caught.value)


def test_other_bind_errors_are_not_port_in_use() -> None:
    """An address this host does not have fails with its own OSError, not PortInUse."""
    with pytest.raises(OSError) as caught:
        bind_listener(0, "192.0.2.1")  # TEST-NET-1: never a local address
    assert not isinstance(caught.value, PortInUse)
    assert caught.value.errno == errno.EADDRNOTAVAIL


async def test_health_routes_report_liveness_and_readiness() -> None:
    """/healthz is always ok; /readyz is 200 "ready" or 503 "starting" as the callback says."""
    state = {"ready": False}
    app = web.Application()
    app.add_routes(health_routes(lambda: state["ready"], "svc"))
    async with TestClient(TestServer(app)) as client:
        live = await client.get("/healthz")
        assert (live.status, await live.json()) == (200, {"status": "ok", "service": "svc"})
        starting = await client.get("/readyz")
        assert starting.status == 503
        assert await starting.json() == {"status": "starting", "service": "svc"}
        state["ready"] = True
        ready = await client.get("/readyz")
        assert (ready.status, await ready.json()) == (200, {"status": "ready", "service": "svc"})
        assert ready.content_type == "application/json"
