"""The OpenAPI 3.1 description of the ingest gateway, served on ``GET /openapi.json``.

Built from the settings so the documented size limits are the enforced ones. The schemas are
generated from the Structs of :mod:`streams.http.ingest_schemas` (the rejection codes come
from :data:`aggregations.events.RejectReason` through them).
"""

from __future__ import annotations

from typing import Any

import msgspec

from streams.http.ingest_schemas import REQUEST_TYPES, RESPONSE_TYPES
from streams.settings import Settings

__all__ = ["component_schemas", "ingest_openapi"]

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def component_schemas() -> dict[str, Any]:
    """``components/schemas``, generated from the request and response Structs.

    The two per-event verdicts are gathered into one ``EventResult`` schema (a ``oneOf`` of
    both objects, told apart by ``status``), which ``IngestResponse.results`` refers to.
    """
    types = REQUEST_TYPES + RESPONSE_TYPES
    _, schemas = msgspec.json.schema_components(types, ref_template=_REF + "{name}")
    verdicts = [schemas.pop("AcceptedResult"), schemas.pop("RejectedResult")]
    schemas["EventResult"] = {
        "oneOf": verdicts,
        "description": "Verdict on the event at `index`: accepted or rejected.",
    }
    schemas["IngestResponse"]["properties"]["results"]["items"] = _ref("EventResult")
    return schemas


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


INTERNAL_ERROR = {
    "description": "A bug: the error id is logged with the traceback. Whether any event was"
    " accepted is unknown; retrying is safe (duplicates are dropped by event_id).",
    "content": {"application/json": {"schema": _ref("InternalError")}},
}


def _probe(description: str) -> dict[str, Any]:
    return {"get": {"summary": description, "responses": {"200": {"description": "OK"}}}}


def _otlp_body(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }


def _traces_operation(settings: Settings) -> dict[str, Any]:
    """``POST /v1/traces``, the OTLP/HTTP trace receiver (``streams/http/otlp.py``)."""
    status = "A google.rpc.Status in the request's encoding."
    return {
        "summary": "Send OpenTelemetry spans (OTLP/HTTP)",
        "description": (
            "An OTLP ExportTraceServiceRequest, protobuf or OTLP/JSON, gzip or not, as an "
            "OpenTelemetry exporter sends it. Each span with GenAI usage (gen_ai.usage.* "
            "token counts) becomes a usage event with the id otel-<trace id>-<span id>; "
            "other spans are skipped. GenAI spans with bad values are rejected with the "
            "event reason codes, dead-lettered and counted in partial_success. Bodies above "
            f"{settings.max_request_bytes} bytes (after gzip) get 413."
        ),
        "operationId": "exportTraces",
        "security": [{}, {"bearerAuth": []}, {"apiKeyHeader": []}],
        "requestBody": {
            "required": True,
            "content": {
                "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "object"}},
            },
        },
        "responses": {
            "200": _otlp_body(
                "ExportTraceServiceResponse, with partial_success when spans were rejected;"
                " sent once Kafka acknowledged every event."
            ),
            "400": _otlp_body(f"Not an ExportTraceServiceRequest. {status}"),
            "401": _otlp_body(f"API keys are configured and none was given. {status}"),
            "413": _otlp_body(f"The body is larger than the gateway's limit. {status}"),
            "415": _otlp_body(f"Content-Type is neither protobuf nor JSON. {status}"),
            "429": {**_otlp_body(f"Too many requests. {status}"), "headers": _RETRY_AFTER},
            "503": {
                **_otlp_body(f"Kafka is unreachable; no span was accepted. {status}"),
                "headers": _RETRY_AFTER,
            },
            "500": INTERNAL_ERROR,
        },
    }


def ingest_openapi(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``POST /v1/events``, ``POST /v1/traces`` and the probe
    routes."""
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
            "500": INTERNAL_ERROR,
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
            "/v1/traces": {"post": _traces_operation(settings)},
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
            "schemas": component_schemas(),
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
