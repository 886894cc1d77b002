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


N_INT = _nullable("integer")
N_NUM = _nullable("number")
RANK = {"type": "integer", "minimum": 1}


def _array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _schemas() -> dict[str, Any]:
    total = _obj({"tokens": COUNT, "prev_tokens": N_INT, "wow_pct": N_NUM, "growth_streak": COUNT})
    return {
        "Error": _obj({"error": STR, "status": INT}),
        "Health": _obj({"status": STR, "service": STR}),
        "Total": total,
        "LeaderboardRow": _obj(
            {
                "rank": RANK,
                "member": STR,
                "name": STR,
                "tokens": COUNT,
                "prompt": COUNT,
                "completion": COUNT,
                "calls": COUNT,
                "share_pct": N_NUM,
                "prev_tokens": N_INT,
                "prev_rank": N_INT,
                "wow_pct": N_NUM,
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
                "rows": _array(_ref("LeaderboardRow")),
            }
        ),
        "RollingRow": _obj(
            {"rank": RANK, "member": STR, "name": STR, "tokens": COUNT, "share_pct": N_NUM},
            MODEL_LABELS,
        ),
        "RollingLeaderboard": _obj(
            {
                "dimension": DIMENSION,
                "from": {"type": "string", "pattern": DAY_PATTERN},
                "to": {"type": "string", "pattern": DAY_PATTERN},
                "days": RANK,
                "total_tokens": COUNT,
                "ranked": COUNT,
                "rows": _array(_ref("RollingRow")),
            }
        ),
        "HistoryWeek": _obj(
            {
                "week": WEEK,
                "tokens": COUNT,
                "rank": N_INT,
                "ranked": COUNT,
                "share_pct": N_NUM,
                "prev_tokens": N_INT,
                "wow_pct": N_NUM,
            }
        ),
        "History": _obj(
            {
                "dimension": DIMENSION,
                "member": STR,
                "name": STR,
                "weeks": _array(_ref("HistoryWeek")),
            },
            MODEL_LABELS,
        ),
        "Overview": _obj(
            {
                "current_week": {"type": ["string", "null"], "pattern": WEEK_PATTERN},
                "last_closed_week": {"type": ["string", "null"], "pattern": WEEK_PATTERN},
                "watermark_ms": COUNT,
                "snapshot_at_ms": N_INT,
                "weeks": _array(WEEK),
                "closed_weeks": _array(WEEK),
                "total": {"oneOf": [_ref("Total"), {"type": "null"}]},
            }
        ),
        "WeekToDate": _obj(
            {
                "dimension": {"type": "string", "enum": ["model", "country", "vendor", "total"]},
                "member": STR,
                "week": WEEK,
                "day": {"type": "string", "pattern": DAY_PATTERN},
                "tokens": COUNT,
                "last_week_tokens": COUNT,
                "wow_pct": _nullable("number"),
            }
        ),
        "CountryShares": _obj(
            {
                "weeks": _array(WEEK),
                "totals": _array(COUNT),
                "countries": _array(_obj({"country": STR, "name": STR, "tokens": _array(COUNT)})),
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
                "kind": {"enum": ["entered", "dropped", "moved_up", "moved_down", "new_leader"]},
                "dimension": DIMENSION,
                "week": WEEK,
                "phase": {"enum": ["live", "final"]},
                "member": STR,
                "old_rank": N_INT,
                "new_rank": N_INT,
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
    return _obj(
        {
            "week": WEEK,
            "top_n": COUNT,
            "total": total,
            "countries": _array(
                _obj(
                    {
                        "country": STR,
                        "tokens": COUNT,
                        "prev_tokens": N_INT,
                        "wow_pct": N_NUM,
                        "rank": INT,
                    }
                )
            ),
            "leader": _obj({"country": _nullable("string"), "streak": COUNT}),
            "models": _array(
                _obj(
                    {
                        "rank": INT,
                        "model": STR,
                        "name": STR,
                        "vendor": STR,
                        "country": STR,
                        "tokens": COUNT,
                        "prev_tokens": N_INT,
                        "wow_pct": N_NUM,
                        "prev_rank": N_INT,
                    }
                )
            ),
            "dropped": _array(_obj({"model": STR, "name": STR, "prev_rank": INT, "rank": N_INT})),
            "entered": _array(_obj({"model": STR, "name": STR, "rank": INT, "prev_rank": N_INT})),
        }
    )


def _query(name: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": text}


def _path(name: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": text}


def _json_response(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(schema)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Bad parameter",
        404: "Unknown week, member or dimension",
        503: "Redis or Kafka unavailable",
    }
    return {str(s): _json_response("Error", text[s]) for s in statuses}


def _get(
    summary: str, schema: str, params: list[dict[str, Any]], errors: tuple[int, ...] = (503,)
) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": params,
            "responses": {"200": _json_response(schema, summary), **_errors(*errors)},
        }
    }


def _int_query(name: str, low: int, high: int, default: int | None, text: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
    if default is not None:
        schema["default"] = default
    return _query(name, schema, text)


WEEK_PARAM = _query(
    "week",
    {"type": "string", "default": "current", "pattern": r"^(current|last|\d{4}-W\d{2})$"},
    "current, last (the last closed week) or an ISO week id such as 2026-W47",
)
DIM_PARAM = _path("dimension", DIMENSION, "what is ranked")
N_PARAM = _int_query("n", 1, 100, 10, "rows to return")
ALL_ERRORS = (400, 404, 503)


def _paths() -> dict[str, Any]:
    member = {"type": "string", "minLength": 1}
    end_day = {"type": "string", "pattern": DAY_PATTERN}
    return {
        "/v1/leaderboard/{dimension}": _get(
            "Top N of a dimension in one week",
            "Leaderboard",
            [DIM_PARAM, WEEK_PARAM, N_PARAM],
            ALL_ERRORS,
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
        ),
        "/v1/report": _get(
            "The weekly report (the JSON of `tokenboard report --json`)",
            "Report",
            [WEEK_PARAM, _int_query("top", 1, 100, 10, "models in the top list")],
            ALL_ERRORS,
        ),
        "/v1/history/model/{model_id}": _get(
            "Weekly series of one model (ids may contain slashes)",
            "History",
            [_path("model_id", member, "model id, e.g. deepseek/deepseek-v4-flash")],
            (404, 503),
        ),
        "/v1/history/country/{code}": _get(
            "Weekly series of one country",
            "History",
            [_path("code", member, "ISO 3166-1 alpha-2 code, e.g. CN")],
            (404, 503),
        ),
        "/v1/history/vendor/{name}": _get(
            "Weekly series of one vendor",
            "History",
            [_path("name", member, "vendor name, e.g. DeepSeek")],
            (404, 503),
        ),
        "/v1/week-to-date/{dimension}": _get(
            "Week-to-date tokens against last week up to the same weekday",
            "WeekToDate",
            [
                _path(
                    "dimension",
                    {"type": "string", "enum": ["model", "country", "vendor", "total"]},
                    "what to total; `total` is the global total",
                ),
                _query("member", member, "model id, country code or vendor (not for total)"),
                _query("day", end_day, "UTC day, default: the watermark's day"),
            ],
            ALL_ERRORS,
        ),
        "/v1/overview": _get("Current week, watermark and the global total", "Overview", []),
        "/v1/countries/shares": _get(
            "Tokens per country and week, for a stacked chart",
            "CountryShares",
            [_int_query("weeks", 1, 520, None, "only the most recent weeks (default: all)")],
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
                        "also send this many recent events per partition first",
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
            [_path("path", member, "file under streams/http/static")],
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
