"""The OpenAPI 3.1 description of the read API (served at ``/openapi.json``).

Paths and parameters are written here; ``components/schemas`` are generated from the response
Structs of :mod:`streams.http.schemas` (JSON Schema 2020-12, as OpenAPI 3.1 allows). The
bodies the API builds itself are closed (``additionalProperties: false``): a field added to a
response without being declared fails the conversion and the conformance test.
"""

from __future__ import annotations

from typing import Any

import msgspec

from aggregations.export import FORMATS, MEDIA_TYPES
from aggregations.totals import RANKED_DIMENSIONS
from streams.http.schemas import DAY_PATTERN, RESPONSE_TYPES

__all__ = ["component_schemas", "openapi_document"]

JSON = "application/json"
REF = "#/components/schemas/"
DIMENSION = {"type": "string", "enum": list(RANKED_DIMENSIONS)}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def component_schemas() -> dict[str, Any]:
    """``components/schemas``: every response Struct and the Structs they contain."""
    _, components = msgspec.json.schema_components(RESPONSE_TYPES, ref_template=REF + "{name}")
    return components


def _query(name: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": text}


def _path(name: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": text}


def _json_response(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(schema)}}}


INTERNAL_ERROR = _json_response(
    "InternalError", "A bug: the error id is logged with the traceback (any route)"
)


def _errors(*statuses: int) -> dict[str, Any]:
    """The documented error answers: ``statuses`` with the Error body, and always the 500."""
    text = {
        400: "Bad parameter",
        404: "Unknown week, member or dimension",
        503: "Redis or Kafka unavailable",
    }
    responses = {str(s): _json_response("Error", text[s]) for s in statuses}
    return {**responses, "500": INTERNAL_ERROR}


#: Answers of the cached routes (streams.http.read_cache) carry these validators.
CACHE_HEADERS = {
    "ETag": {
        "description": "Strong tag of the body (the same in every API process)",
        "schema": {"type": "string"},
    },
    "Last-Modified": {
        "description": "The last snapshot write (absent before any)",
        "schema": {"type": "string"},
    },
    "Cache-Control": {
        "description": "`public, no-cache`: store, but revalidate with If-None-Match",
        "schema": {"type": "string"},
    },
}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "ETag(s) of an answer already held: 304 without a body when it is current",
}


def _get(
    summary: str,
    schema: str,
    params: list[dict[str, Any]],
    errors: tuple[int, ...] = (503,),
    *,
    cached: bool = False,
) -> dict[str, Any]:
    ok = _json_response(schema, summary)
    responses = {"200": ok, **_errors(*errors)}
    if cached:
        # Computed once per snapshot change and served from memory, with validators.
        ok["headers"] = CACHE_HEADERS
        responses["304"] = {
            "description": "Not modified: If-None-Match named the current ETag",
            "headers": CACHE_HEADERS,
        }
        params = [*params, IF_NONE_MATCH]
    return {"get": {"summary": summary, "parameters": params, "responses": responses}}


def _int_query(name: str, low: int, high: int, default: int | None, text: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
    if default is not None:
        schema["default"] = default
    return _query(name, schema, text)


def _week_param(default: str) -> dict[str, Any]:
    return _query(
        "week",
        {"type": "string", "default": default, "pattern": r"^(current|last|\d{4}-W\d{2})$"},
        "current (the week of the pipeline's event time), last (the week before it, closed or "
        "not) or an ISO week id such as 2026-W47",
    )


#: Leaderboards show the week in progress; the report the last complete week (as the CLI).
WEEK_PARAM = _week_param("current")
REPORT_WEEK_PARAM = _week_param("last")
DIM_PARAM = _path("dimension", DIMENSION, "what is ranked")
N_PARAM = _int_query("n", 1, 100, 10, "rows to return")
BY_PARAM = _query(
    "by",
    {"type": "string", "enum": ["tokens", "spend"], "default": "tokens"},
    "tokens: every member with traffic, by tokens; spend: the members with a price for some"
    " of their tokens, by cost (micro-dollars); rank, prev_rank and move follow it",
)
ALL_ERRORS = (400, 404, 503)


def _paths() -> dict[str, Any]:
    member = {"type": "string", "minLength": 1}
    end_day = {"type": "string", "pattern": DAY_PATTERN}
    return {
        "/v1/leaderboard/{dimension}": _get(
            "Top N of a dimension in one week, by tokens or by spend",
            "Leaderboard",
            [DIM_PARAM, WEEK_PARAM, N_PARAM, BY_PARAM],
            ALL_ERRORS,
            cached=True,
        ),
        "/v1/leaderboard/{dimension}/rolling": _get(
            "Top N over the last days (UTC), summed from the daily boards",
            "RollingLeaderboard",
            [
                DIM_PARAM,
                _int_query("days", 1, 31, 7, "window length in days"),
                _query("end", end_day, "last day of the window (default: the watermark's day)"),
                N_PARAM,
            ],
            ALL_ERRORS,
            cached=True,
        ),
        "/v1/report": _get(
            "The weekly report (the JSON of `tokenboard report --json`)",
            "Report",
            [REPORT_WEEK_PARAM, _int_query("top", 1, 100, 10, "models in the top list")],
            ALL_ERRORS,
            cached=True,
        ),
        "/v1/history/model/{model_id}": _get(
            "Weekly series of one model (ids may contain slashes)",
            "History",
            [_path("model_id", member, "model id, e.g. deepseek/deepseek-v4-flash")],
            (404, 503),
            cached=True,
        ),
        "/v1/history/country/{code}": _get(
            "Weekly series of one country",
            "History",
            [_path("code", member, "ISO 3166-1 alpha-2 code, e.g. CN")],
            (404, 503),
            cached=True,
        ),
        "/v1/history/vendor/{name}": _get(
            "Weekly series of one vendor",
            "History",
            [_path("name", member, "vendor name, e.g. DeepSeek")],
            (404, 503),
            cached=True,
        ),
        "/v1/history/app/{name}": _get(
            "Weekly series of one app",
            "History",
            [_path("name", member, "app name, e.g. support-bot")],
            (404, 503),
            cached=True,
        ),
        "/v1/export/{dimension}": _export(),
        "/v1/week-to-date/{dimension}": _get(
            "Week-to-date tokens against last week up to the same weekday",
            "WeekToDate",
            [
                _path(
                    "dimension",
                    {"type": "string", "enum": [*RANKED_DIMENSIONS, "total"]},
                    "what to total; `total` is the global total",
                ),
                _query("member", member, "model id, country code, vendor or app (not for total)"),
                _query("day", end_day, "UTC day, default: the watermark's day"),
            ],
            ALL_ERRORS,
            cached=True,
        ),
        "/v1/overview": _get(
            "Current week, watermark and the global total", "Overview", [], cached=True
        ),
        "/v1/countries/shares": _get(
            "Tokens per country and week, for a stacked chart",
            "CountryShares",
            [_int_query("weeks", 1, 520, None, "only the most recent weeks (default: all)")],
            (400, 503),
            cached=True,
        ),
        "/v1/dead-letters": _get(
            "Events the workers rejected, with reason, detail and source (newest last)",
            "DeadLetters",
            [
                _query(
                    "since",
                    {"type": "string", "minLength": 1},
                    "only those dead-lettered since: a duration (90s, 15m, 2h, 7d) or a time"
                    " (2026-11-18T14:00:00Z); default: the whole topic",
                ),
                _query("reason", {"type": "string"}, "only this reason code, e.g. too_old"),
                _int_query("limit", 1, 1000, 50, "the newest this many"),
            ],
            (400, 503),
        ),
        "/v1/events/stream": {
            "get": {
                "summary": "Live ranking changes and alerts (Server-Sent Events)",
                "description": "Starts with `event: ready`; then one `data: <json>` message"
                " per event (RankingChange or Alert schema) published from then on, and"
                " `: keep-alive` comments.",
                "parameters": [
                    _int_query(
                        "backlog",
                        0,
                        500,
                        0,
                        "first send the latest this many events, over all partitions, oldest first",
                    )
                ],
                "responses": {
                    "200": {
                        "description": "An endless event stream",
                        "content": {
                            "text/event-stream": {
                                "schema": {"type": "string"},
                                "x-event-data": {"oneOf": [_ref("RankingChange"), _ref("Alert")]},
                            }
                        },
                    },
                    **_errors(400, 503),
                    "503": _json_response(
                        "Error",
                        "Kafka unavailable, or the process serves its maximum of live-feed"
                        " clients (TOKENBOARD_API_MAX_STREAMS): retry after `Retry-After`"
                        " seconds",
                    ),
                },
            }
        },
        "/healthz": _get("Liveness", "Health", [], ()),
        "/readyz": {
            "get": {
                "summary": "Readiness: Redis answers",
                "responses": {
                    "200": _json_response("Health", "ready"),
                    "503": _json_response("Health", "starting or Redis unreachable"),
                    "500": INTERNAL_ERROR,
                },
            }
        },
        "/metrics": _text_get("Prometheus metrics", "text/plain"),
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {
                    "200": {"description": "OpenAPI 3.1", "content": {JSON: {"schema": {}}}},
                    "500": INTERNAL_ERROR,
                },
            }
        },
        "/": _text_get("The dashboard page", "text/html"),
        "/static/{path}": _text_get(
            "Dashboard assets (vendored Chart.js included)",
            "*/*",
            [_path("path", member, "file under streams/http/static")],
        ),
    }


def _export() -> dict[str, Any]:
    """The export route: one body in the asked format, as a download."""
    get = _get(
        "Every ranked member of a dimension in one week, as a CSV, JSON or Parquet download",
        "Export",
        [
            DIM_PARAM,
            WEEK_PARAM,
            _query(
                "format",
                {"type": "string", "enum": list(FORMATS), "default": "csv"},
                "csv (RFC 4180, a header line), json, or parquet (int64, string and float64"
                " columns; the header fields as schema metadata)",
            ),
        ],
        ALL_ERRORS,
        cached=True,
    )
    ok = get["get"]["responses"]["200"]
    ok["description"] += (
        ". The same columns in every format: rank, the member under its dimension's name,"
        " name, (models: vendor, country), tokens, prompt_tokens, completion_tokens, calls,"
        " cost_micro_usd (empty when no token had a price), unpriced_tokens, share_pct,"
        " spend_share_pct, prev_rank, prev_tokens, wow_pct."
    )
    ok["content"] = {
        MEDIA_TYPES["json"]: ok["content"][JSON],
        "text/csv": {"schema": {"type": "string"}},
        MEDIA_TYPES["parquet"]: {"schema": {"type": "string", "format": "binary"}},
    }
    ok["headers"] = {
        **ok["headers"],
        "Content-Disposition": {
            "description": '`attachment; filename="tokenboard-{dimension}-{week}.{format}"`',
            "schema": {"type": "string"},
        },
    }
    return get


def _text_get(
    summary: str, media: str, params: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": params or [],
            "responses": {
                "200": {"description": summary, "content": {media: {"schema": {"type": "string"}}}},
                # Only /static/{path} has a parameter, and a missing file is a 404.
                **_errors(*((404,) if params else ())),
            },
        }
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of ``tokenboard api``."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tokenboard read API",
            "version": "1.0.0",
            "description": "Read-only: weekly and rolling leaderboards of LLM token usage,"
            " the weekly report, histories, country shares and live ranking changes. Every"
            " route answers GET (and HEAD); any other method gets 405. Errors use the Error"
            " schema; an unexpected failure is a 500 with the InternalError schema, whose"
            " error_id is logged with the traceback. Leaderboards, the report, histories, the"
            " overview, week to date and country shares are computed once per snapshot change"
            " and carry ETag and Last-Modified; If-None-Match with the current ETag gets 304.",
        },
        "paths": _paths(),
        "components": {
            "schemas": component_schemas(),
            "responses": {"MethodNotAllowed": _json_response("Error", "Not a GET")},
        },
    }
