"""The OpenAPI 3.1 description of the read API (served at ``/openapi.json``).

Schemas are JSON Schema 2020-12, as OpenAPI 3.1 allows, and closed with
``additionalProperties: false`` where the API builds the object itself: a field added to a
response without being described here fails the conformance test.
"""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

JSON = "application/json"
REF = "#/components/schemas/"
WEEK_PATTERN = r"^\d{4}-W\d{2}$"
DAY_PATTERN = r"^\d{4}-\d{2}-\d{2}$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def _nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


def _obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    """A closed object: every key of ``required`` must be present, nothing undeclared."""
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
        "additionalProperties": False,
    }


INT = {"type": "integer"}
COUNT = {"type": "integer", "minimum": 0}
STR = {"type": "string"}
WEEK = {"type": "string", "pattern": WEEK_PATTERN}
DIMENSION = {"type": "string", "enum": ["model", "country", "vendor"]}
MODEL_LABELS = {"vendor": STR, "country": STR}


def _schemas() -> dict[str, Any]:
    total = _obj(
        {
            "tokens": COUNT,
            "prev_tokens": _nullable("integer"),
            "wow_pct": _nullable("number"),
            "growth_streak": COUNT,
        }
    )
    return {
        "Error": _obj({"error": STR, "status": INT}),
        "Health": _obj({"status": STR, "service": STR}),
        "Total": total,
        "LeaderboardRow": _obj(
            {
                "rank": {"type": "integer", "minimum": 1},
                "member": STR,
                "name": STR,
                "tokens": COUNT,
                "prompt": COUNT,
                "completion": COUNT,
                "calls": COUNT,
                "share_pct": _nullable("number"),
                "prev_tokens": _nullable("integer"),
                "prev_rank": _nullable("integer"),
                "wow_pct": _nullable("number"),
                "move": {"type": "string", "description": "↑3, ↓2, =, new (rank_move)"},
            },
            MODEL_LABELS,
        ),
        "Leaderboard": _obj(
            {
                "dimension": DIMENSION,
                "week": WEEK,
                "previous_week": WEEK,
                "has_previous": {"type": "boolean"},
                "total_tokens": COUNT,
                "ranked": COUNT,
                "rows": {"type": "array", "items": _ref("LeaderboardRow")},
            }
        ),
        "RollingRow": _obj(
            {
                "rank": {"type": "integer", "minimum": 1},
                "member": STR,
                "name": STR,
                "tokens": COUNT,
                "share_pct": _nullable("number"),
            },
            MODEL_LABELS,
        ),
        "RollingLeaderboard": _obj(
            {
                "dimension": DIMENSION,
                "from": {"type": "string", "pattern": DAY_PATTERN},
                "to": {"type": "string", "pattern": DAY_PATTERN},
                "days": {"type": "integer", "minimum": 1},
                "total_tokens": COUNT,
                "ranked": COUNT,
                "rows": {"type": "array", "items": _ref("RollingRow")},
            }
        ),
        "HistoryWeek": _obj(
            {
                "week": WEEK,
                "tokens": COUNT,
                "rank": _nullable("integer"),
                "ranked": COUNT,
                "share_pct": _nullable("number"),
                "prev_tokens": _nullable("integer"),
                "wow_pct": _nullable("number"),
            }
        ),
        "History": _obj(
            {
                "dimension": DIMENSION,
                "member": STR,
                "name": STR,
                "weeks": {"type": "array", "items": _ref("HistoryWeek")},
            },
            MODEL_LABELS,
        ),
        "Overview": _obj(
            {
                "current_week": {"type": ["string", "null"], "pattern": WEEK_PATTERN},
                "last_closed_week": {"type": ["string", "null"], "pattern": WEEK_PATTERN},
                "watermark_ms": COUNT,
                "snapshot_at_ms": _nullable("integer"),
                "weeks": {"type": "array", "items": WEEK},
                "closed_weeks": {"type": "array", "items": WEEK},
                "total": {"oneOf": [_ref("Total"), {"type": "null"}]},
            }
        ),
        "CountryShares": _obj(
            {
                "weeks": {"type": "array", "items": WEEK},
                "totals": {"type": "array", "items": COUNT},
                "countries": {
                    "type": "array",
                    "items": _obj(
                        {
                            "country": STR,
                            "name": STR,
                            "tokens": {"type": "array", "items": COUNT},
                        }
                    ),
                },
            }
        ),
        "Report": _report_schema(total),
        "RankingChange": {
            "type": "object",
            "description": "Published to the rankings topic (aggregations.rankings).",
            "required": ["id", "type", "kind", "dimension", "week", "phase", "member"],
            "properties": {
                "id": STR,
                "type": {"const": "ranking_change"},
                "kind": {
                    "enum": ["entered", "dropped", "moved_up", "moved_down", "new_leader"],
                },
                "dimension": DIMENSION,
                "week": WEEK,
                "phase": {"enum": ["live", "final"]},
                "member": STR,
                "old_rank": _nullable("integer"),
                "new_rank": _nullable("integer"),
                "tokens": COUNT,
                "name": {"type": "string", "description": "added by the stream"},
                "text": {"type": "string", "description": "added by the stream"},
            },
        },
        "Alert": {
            "type": "object",
            "description": "Published to the alerts topic (aggregations.alerts); more fields"
            " depend on the kind.",
            "required": ["id", "type", "kind", "week", "subject", "message"],
            "properties": {
                "id": STR,
                "type": {"const": "alert"},
                "kind": STR,
                "week": WEEK,
                "subject": STR,
                "message": STR,
                "name": STR,
                "text": STR,
            },
        },
    }


def _report_schema(total: dict[str, Any]) -> dict[str, Any]:
    """The weekly report contract of ``aggregations.report.build_report``."""
    nullable_int = _nullable("integer")
    nullable_num = _nullable("number")
    return _obj(
        {
            "week": WEEK,
            "top_n": COUNT,
            "total": total,
            "countries": {
                "type": "array",
                "items": _obj(
                    {
                        "country": STR,
                        "tokens": COUNT,
                        "prev_tokens": nullable_int,
                        "wow_pct": nullable_num,
                        "rank": INT,
                    }
                ),
            },
            "leader": _obj({"country": _nullable("string"), "streak": COUNT}),
            "models": {
                "type": "array",
                "items": _obj(
                    {
                        "rank": INT,
                        "model": STR,
                        "name": STR,
                        "vendor": STR,
                        "country": STR,
                        "tokens": COUNT,
                        "prev_tokens": nullable_int,
                        "wow_pct": nullable_num,
                        "prev_rank": nullable_int,
                    }
                ),
            },
            "dropped": {
                "type": "array",
                "items": _obj({"model": STR, "name": STR, "prev_rank": INT, "rank": nullable_int}),
            },
            "entered": {
                "type": "array",
                "items": _obj({"model": STR, "name": STR, "rank": INT, "prev_rank": nullable_int}),
            },
        }
    )


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _path(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


def _json_response(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(schema)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Bad parameter",
        404: "Unknown week, member or dimension",
        503: "Redis or Kafka unavailable",
    }
    return {str(s): _json_response("Error", text[s]) for s in statuses}


def _get(summary: str, schema: str, params: list[dict[str, Any]], *errors: int) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": params,
            "responses": {"200": _json_response(schema, summary), **_errors(*errors)},
        }
    }


WEEK_PARAM = _query(
    "week",
    {"type": "string", "default": "current", "pattern": r"^(current|last|\d{4}-W\d{2})$"},
    "current, last (the last closed week) or an ISO week id such as 2026-W47",
)
DIM_PARAM = _path("dimension", DIMENSION, "what is ranked")


def _n_param(default: int, name: str = "n") -> dict[str, Any]:
    return _query(
        name,
        {"type": "integer", "minimum": 1, "maximum": 100, "default": default},
        "rows to return",
    )


def _paths() -> dict[str, Any]:
    member = {"type": "string", "minLength": 1}
    return {
        "/v1/leaderboard/{dimension}": _get(
            "Top N of a dimension in one week",
            "Leaderboard",
            [DIM_PARAM, WEEK_PARAM, _n_param(10)],
            400,
            404,
            503,
        ),
        "/v1/leaderboard/{dimension}/rolling": _get(
            "Top N over the last days (UTC), summed from the daily boards",
            "RollingLeaderboard",
            [
                DIM_PARAM,
                _query(
                    "days",
                    {"type": "integer", "minimum": 1, "maximum": 31, "default": 7},
                    "window length in days",
                ),
                _query(
                    "end",
                    {"type": "string", "pattern": DAY_PATTERN},
                    "last day of the window (default: the event-time watermark's day)",
                ),
                _n_param(10),
            ],
            400,
            404,
            503,
        ),
        "/v1/report": _get(
            "The weekly report (the JSON of `tokenboard report --json`)",
            "Report",
            [WEEK_PARAM, _n_param(10, "top")],
            400,
            404,
            503,
        ),
        "/v1/history/model/{model_id}": _get(
            "Weekly series of one model (ids may contain slashes)",
            "History",
            [_path("model_id", member, "model id, e.g. deepseek/deepseek-v4-flash")],
            404,
            503,
        ),
        "/v1/history/country/{code}": _get(
            "Weekly series of one country",
            "History",
            [_path("code", member, "ISO 3166-1 alpha-2 code, e.g. CN")],
            404,
            503,
        ),
        "/v1/history/vendor/{name}": _get(
            "Weekly series of one vendor",
            "History",
            [_path("name", member, "vendor name, e.g. DeepSeek")],
            404,
            503,
        ),
        "/v1/overview": _get("Current week, watermark and the global total", "Overview", [], 503),
        "/v1/countries/shares": _get(
            "Tokens per country and week, for a stacked chart",
            "CountryShares",
            [
                _query(
                    "weeks",
                    {"type": "integer", "minimum": 1, "maximum": 520},
                    "only the most recent weeks (default: every retained week)",
                )
            ],
            400,
            503,
        ),
        "/v1/events/stream": {
            "get": {
                "summary": "Live ranking changes and alerts (Server-Sent Events)",
                "description": "Starts with `event: ready`; then one `data: <json>` message"
                " per event (RankingChange or Alert schema) published from then on, and"
                " `: keep-alive` comments.",
                "parameters": [
                    _query(
                        "backlog",
                        {"type": "integer", "minimum": 0, "maximum": 500, "default": 0},
                        "also send up to this many recent events per partition",
                    ),
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
                },
            }
        },
        "/healthz": _get("Liveness", "Health", []),
        "/readyz": {
            "get": {
                "summary": "Readiness: Redis answers",
                "responses": {
                    "200": _json_response("Health", "ready"),
                    "503": _json_response("Health", "starting or Redis unreachable"),
                },
            }
        },
        "/metrics": _text_get("Prometheus metrics", "text/plain"),
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {
                    "200": {"description": "OpenAPI 3.1", "content": {JSON: {"schema": {}}}}
                },
            }
        },
        "/": _text_get("The dashboard page", "text/html"),
        "/static/{path}": _text_get(
            "Dashboard assets (vendored Chart.js included)",
            "*/*",
            [_path("path", member, "file under streams/static")],
        ),
    }


def _text_get(
    summary: str, media: str, params: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": params or [],
            "responses": {
                "200": {"description": summary, "content": {media: {"schema": {"type": "string"}}}}
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
            " schema.",
        },
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "responses": {"MethodNotAllowed": _json_response("Error", "Not a GET")},
        },
    }
