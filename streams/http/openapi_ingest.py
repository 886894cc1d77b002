"""The OpenAPI 3.1 description of the ingest gateway, served on ``GET /openapi.json``.

Built from the settings so the documented size limits are the enforced ones, and from
:data:`aggregations.events.RejectReason` so the documented rejection codes are the real ones.
"""

from __future__ import annotations

from typing import Any, get_args

from aggregations.events import MAX_COUNT, RejectReason
from streams.settings import Settings

__all__ = ["ingest_openapi"]

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _count(description: str, minimum: int = 0) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": MAX_COUNT, "description": description}


def _text(description: str) -> dict[str, Any]:
    return {"type": ["string", "null"], "maxLength": 256, "description": description}


_USAGE_EVENT: dict[str, Any] = {
    "type": "object",
    "description": (
        "One LLM call, or a rollup of `calls` calls. Unknown fields are ignored. "
        "`reasoning_tokens` are part of `completion_tokens` and `cached_tokens` part of "
        "`prompt_tokens`; the leaderboard counts prompt_tokens + completion_tokens."
    ),
    "required": ["event_id", "ts", "model", "prompt_tokens", "completion_tokens"],
    "properties": {
        "event_id": {
            "type": "string",
            "minLength": 1,
            "maxLength": 256,
            "description": "Unique id; events with an id already counted are dropped, "
            "so retrying a send is always safe.",
        },
        "ts": {
            "description": "When the call happened: epoch milliseconds or an RFC 3339 time "
            "with an offset. At most 24 h ahead of the gateway's clock.",
            "oneOf": [
                {"type": "integer", "minimum": 100_000_000_000, "maximum": 253_402_300_799_999},
                {"type": "string", "format": "date-time"},
            ],
        },
        "model": {
            "type": "string",
            "minLength": 1,
            "maxLength": 256,
            "examples": ["openai/gpt-5.1"],
        },
        "prompt_tokens": _count("Input tokens, cached ones included."),
        "completion_tokens": _count("Output tokens, reasoning ones included."),
        "reasoning_tokens": _count("Part of completion_tokens spent reasoning (default 0)."),
        "cached_tokens": _count("Part of prompt_tokens served from a cache (default 0)."),
        "calls": _count("Calls rolled up in this event (default 1).", minimum=1),
        "vendor": _text("Overrides the catalog's vendor of the model."),
        "country": {
            "type": ["string", "null"],
            "pattern": "^[A-Za-z]{2}$",
            "description": "ISO 3166-1 alpha-2 code; overrides the catalog's country.",
        },
        "app": _text("Free-form name of the calling application."),
        "region": _text("Free-form region of the caller."),
    },
}

_CLOUD_EVENT: dict[str, Any] = {
    "type": "object",
    "description": "A structured-mode CloudEvent whose `data` is a UsageEvent; `id` and "
    "`time` fill a missing `event_id` and `ts`. `data_base64` is not supported.",
    "required": ["specversion", "data"],
    "properties": {
        "specversion": {"type": "string", "examples": ["1.0"]},
        "id": {"type": "string"},
        "time": {"type": "string", "format": "date-time"},
        "type": {"type": "string"},
        "source": {"type": "string"},
        "datacontenttype": {"type": "string", "examples": ["application/json"]},
        "data": _ref("UsageEvent"),
    },
}

_RESULT: dict[str, Any] = {
    "oneOf": [
        {
            "type": "object",
            "required": ["index", "event_id", "status"],
            "properties": {
                "index": {"type": "integer", "minimum": 0},
                "event_id": {"type": "string"},
                "status": {"const": "accepted"},
            },
        },
        {
            "type": "object",
            "required": ["index", "status", "reason", "detail", "field"],
            "properties": {
                "index": {"type": "integer", "minimum": 0},
                "status": {"const": "rejected"},
                "reason": {"type": "string", "enum": list(get_args(RejectReason))},
                "detail": {"type": "string"},
                "field": {"type": ["string", "null"]},
            },
        },
    ],
    "description": "Verdict on the event at `index` (0-based position in the array, or "
    "among the non-empty NDJSON lines).",
}

_INGEST_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["accepted", "rejected", "results"],
    "properties": {
        "accepted": {"type": "integer", "minimum": 0},
        "rejected": {"type": "integer", "minimum": 0},
        "results": {"type": "array", "items": _ref("EventResult")},
    },
}

_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {
            "type": "string",
            "enum": [
                "unauthorized",
                "payload_too_large",
                "unsupported_media_type",
                "rate_limited",
                "kafka_unavailable",
            ],
        },
        "detail": {"type": "string"},
        "accepted": {"type": "integer", "const": 0},
    },
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    }
}


def _batch_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref("IngestResponse")}},
    }


def _error(description: str, retry: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    if retry:
        response["headers"] = _RETRY_AFTER
    return response


def _probe(description: str) -> dict[str, Any]:
    return {"get": {"summary": description, "responses": {"200": {"description": "OK"}}}}


def ingest_openapi(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``POST /v1/events`` and the probe routes."""
    one_event = {"oneOf": [_ref("UsageEvent"), _ref("CloudEvent")]}
    json_body = {"oneOf": [one_event, {"type": "array", "items": one_event}]}
    example = {
        "event_id": "9f1c2e",
        "ts": "2026-11-18T14:03:07Z",
        "model": "openai/gpt-5.1",
        "prompt_tokens": 1200,
        "completion_tokens": 300,
    }
    events_op = {
        "summary": "Send usage events",
        "description": (
            "One event, a JSON array of events, or NDJSON (one event per line). Each event "
            "is validated on its own and reported accepted only once Kafka acknowledged it. "
            f"Bodies above {settings.max_request_bytes} bytes get 413, events above "
            f"{settings.max_event_bytes} bytes are rejected with `oversized`. When Kafka "
            "cannot be reached the answer is 503 and no event is accepted: retry the whole "
            "request, duplicates are dropped by event_id."
        ),
        "operationId": "sendEvents",
        "security": [{}, {"bearerAuth": []}, {"apiKeyHeader": []}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": json_body, "example": example},
                "application/cloudevents+json": {"schema": _ref("CloudEvent")},
                "application/cloudevents-batch+json": {
                    "schema": {"type": "array", "items": _ref("CloudEvent")}
                },
                "application/x-ndjson": {
                    "schema": {
                        "type": "string",
                        "description": "One UsageEvent or CloudEvent JSON object per line.",
                    }
                },
            },
        },
        "responses": {
            "200": _batch_response("Every event accepted (acknowledged by Kafka)."),
            "207": _batch_response("Some events accepted, some rejected: see `results`."),
            "400": _batch_response("Every event rejected, or the body is not JSON/NDJSON."),
            "401": _error("API keys are configured and none was given or it is wrong."),
            "413": _error("The body is larger than the gateway's limit."),
            "415": _error("Content-Type is not JSON, NDJSON or CloudEvents JSON."),
            "429": _error("Too many requests from this client.", retry=True),
            "503": _error("Kafka is unreachable; nothing was accepted.", retry=True),
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tokenboard ingest gateway",
            "version": "1",
            "description": "Send LLM usage events to the tokenboard leaderboard.",
        },
        "paths": {
            "/v1/events": {"post": events_op},
            "/healthz": _probe("Liveness: the process is up."),
            "/readyz": {
                "get": {
                    "summary": "Readiness: connected to Kafka.",
                    "responses": {
                        "200": {"description": "Ready"},
                        "503": {"description": "Not connected to Kafka yet"},
                    },
                }
            },
            "/metrics": _probe("Prometheus metrics."),
            "/openapi.json": _probe("This document."),
        },
        "components": {
            "schemas": {
                "UsageEvent": _USAGE_EVENT,
                "CloudEvent": _CLOUD_EVENT,
                "EventResult": _RESULT,
                "IngestResponse": _INGEST_RESPONSE,
                "Error": _ERROR,
            },
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "One of the keys in TOKENBOARD_API_KEYS (when set).",
                },
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
