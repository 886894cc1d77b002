"""How the read API and the ingest gateway answer errors, on real aiohttp servers.

Each test runs a tiny application with the production middleware and handlers that raise one
kind of error; nothing talks to Redis or Kafka.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka.errors import KafkaConnectionError
from jsonschema import Draft202012Validator
from redis.exceptions import ConnectionError as RedisConnectionError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from aggregations.errors import InvalidInput, NotFound
from aggregations.weeks import parse_week
from streams.http import api, ingest
from streams.http.openapi_ingest import component_schemas as ingest_components
from streams.http.openapi_read import component_schemas as read_components
from streams.store.queries import MemberNotFound
from streams.store.state import WeekNotFound

Client = TestClient[web.Request, web.Application]
ERROR_ID = re.compile(r"^[0-9a-f]{32}$")


def raising(exc: BaseException) -> Callable[[web.Request], Any]:
    """A handler that raises ``exc``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        raise exc

    return handler


async def week_param(request: web.Request) -> web.Response:
    """Parses ``?week=`` as the queries do, with the pure week id parser."""
    return web.json_response({"week": parse_week(request.query["week"])})


async def int_param(request: web.Request) -> web.Response:
    """The API's integer parameter check, on ``?n=`` between 1 and 100."""
    return web.json_response({"n": api._int_param(request, "n", 10, 1, 100)})


READ_CASES: dict[str, BaseException] = {
    "/invalid": InvalidInput("n must be an integer"),
    "/not-found": NotFound("no such thing"),
    "/week": WeekNotFound("no data for 2020-W01"),
    "/member": MemberNotFound("no model 'x' in any week with data"),
    "/redis": RedisConnectionError("connection refused"),
    "/kafka": KafkaConnectionError("no broker"),
    "/value": ValueError("a bug that happens to be a ValueError"),
    "/lookup": KeyError("a bug that happens to be a LookupError"),
    "/runtime": RuntimeError("plain bug"),
    "/validation": msgspec.ValidationError("a query returned an undocumented shape"),
    "/gone": web.HTTPGone(),
}


def validator(components: dict[str, Any], name: str) -> Draft202012Validator:
    """A validator of the component ``name`` of a document with these ``components``."""
    document = {"components": {"schemas": components}}
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:doc", resource)
    return Draft202012Validator({"$ref": f"urn:doc#/components/schemas/{name}"}, registry=registry)


@pytest.fixture
async def read_client() -> AsyncIterator[Client]:
    """A server with the read API's error middleware and one raising route per error kind."""
    app = web.Application(middlewares=[api.errors_middleware])
    for path, exc in READ_CASES.items():
        app.router.add_get(path, raising(exc))
    app.router.add_get("/redirect", raising(web.HTTPFound("/elsewhere")))
    app.router.add_get("/int", int_param)
    app.router.add_get("/parse-week", week_param)
    app.router.add_get("/v1/week-to-date/{dimension}", api._week_to_date)
    async with TestClient(TestServer(app)) as client:
        yield client


async def read_error(client: Client, path: str, status: int) -> dict[str, Any]:
    """GET ``path``, require ``status`` and a JSON body; return the body."""
    response = await client.get(path, allow_redirects=False)
    assert response.status == status, (path, await response.text())
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    return body


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/invalid", 400),
        ("/not-found", 404),
        ("/week", 404),
        ("/member", 404),
        ("/redis", 503),
        ("/kafka", 503),
        ("/gone", 410),
    ],
)
async def test_read_api_maps_known_errors(read_client: Client, path: str, status: int) -> None:
    """InvalidInput is 400, NotFound (weeks, members) 404, Redis/Kafka 503, HTTP errors as is."""
    body = await read_error(read_client, path, status)
    assert body["status"] == status and body["error"]
    validator(read_components(), "Error").validate(body)


async def test_read_api_keeps_the_message_of_client_errors(read_client: Client) -> None:
    """A 400 or 404 says what was wrong, in the exception's own words."""
    assert (await read_error(read_client, "/invalid", 400))["error"] == "n must be an integer"
    assert (await read_error(read_client, "/week", 404))["error"] == "no data for 2020-W01"
    assert "connection refused" in (await read_error(read_client, "/redis", 503))["error"]


@pytest.mark.parametrize("path", ["/value", "/lookup", "/runtime", "/validation"])
async def test_read_api_answers_any_other_exception_with_a_500(
    read_client: Client, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug, even a plain ValueError or LookupError, is a 500 with an error id, never a 4xx."""
    with caplog.at_level(logging.ERROR, logger="tokenboard.api"):
        body = await read_error(read_client, path, 500)
    validator(read_components(), "InternalError").validate(body)
    assert body["error"] == "internal error" and body["status"] == 500
    assert ERROR_ID.match(body["error_id"])
    assert READ_CASES[path].args[0] not in str(body), "the 500 must not leak the exception"


async def test_read_api_logs_the_traceback_with_the_error_id(
    read_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The 500's error id is in a log record that carries the exception's traceback."""
    with caplog.at_level(logging.ERROR, logger="tokenboard.api"):
        body = await read_error(read_client, "/runtime", 500)
    (record,) = [r for r in caplog.records if body["error_id"] in r.getMessage()]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


async def test_read_api_unknown_route_is_a_json_404(read_client: Client) -> None:
    """A path no route matches is a JSON 404 pointing at the document."""
    body = await read_error(read_client, "/nowhere", 404)
    assert "/openapi.json" in body["error"]


async def test_read_api_lets_redirects_through(read_client: Client) -> None:
    """An HTTP exception below 400 (a redirect) is not turned into an error."""
    response = await read_client.get("/redirect", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/elsewhere"


@pytest.mark.parametrize(
    ("query", "message"),
    [("?n=ten", "n must be an integer, got 'ten'"), ("?n=0", "n must be between 1 and 100")],
)
async def test_api_parameter_checks_are_invalid_input(
    read_client: Client, query: str, message: str
) -> None:
    """A malformed or out-of-range integer parameter is a 400 naming the parameter."""
    assert (await read_client.get("/int")).status == 200
    body = await read_error(read_client, f"/int{query}", 400)
    assert body["error"].startswith(message)


async def test_a_bad_week_id_from_pure_code_is_a_400(read_client: Client) -> None:
    """The week id parser's InvalidInput reaches the client as a 400 with its message."""
    body = await read_error(read_client, "/parse-week?week=W47", 400)
    assert "invalid week id 'W47'" in body["error"]


async def test_week_to_date_checks_its_parameters_before_reading(read_client: Client) -> None:
    """week-to-date: an unknown dimension is a 404, a missing member a 400 (no Redis needed)."""
    await read_error(read_client, "/v1/week-to-date/galaxy", 404)
    body = await read_error(read_client, "/v1/week-to-date/model", 400)
    assert "member is required" in body["error"]


@pytest.fixture
async def ingest_client() -> AsyncIterator[Client]:
    """A server with the gateway's error middleware and a few raising routes."""
    app = web.Application(middlewares=[ingest.errors_middleware])
    app.router.add_get("/runtime", raising(RuntimeError("plain bug")))
    app.router.add_get("/value", raising(ValueError("another bug")))
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.mark.parametrize("path", ["/runtime", "/value"])
async def test_ingest_answers_a_bug_with_a_json_500(
    ingest_client: Client, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The gateway answers an unexpected exception with its documented 500 and logs the id."""
    with caplog.at_level(logging.ERROR, logger="tokenboard.ingest"):
        response = await ingest_client.get(path)
        assert response.status == 500
        body = await response.json()
    validator(ingest_components(), "InternalError").validate(body)
    assert body["error"] == "internal_error" and ERROR_ID.match(body["error_id"])
    assert any(
        body["error_id"] in r.getMessage() and r.exc_info is not None for r in caplog.records
    )


async def test_ingest_answers_unknown_paths_and_methods_in_json(ingest_client: Client) -> None:
    """An unknown path or method gets the documented {"error", "detail"} body, not aiohttp's
    plain text; the 405 names the allowed methods."""
    missing = await ingest_client.get("/nowhere")
    assert missing.status == 404
    body = await missing.json()
    validator(ingest_components(), "Error").validate(body)
    assert body["error"] == "not_found" and "/nowhere" in body["detail"]
    wrong = await ingest_client.post("/runtime")
    assert wrong.status == 405 and "GET" in wrong.headers["Allow"]
    body = await wrong.json()
    validator(ingest_components(), "Error").validate(body)
    assert body["error"] == "method_not_allowed" and "use GET" in body["detail"]
