"""OTLP trace requests for tests, built with the official protobuf classes
(``opentelemetry-proto``), and their OTLP/JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span


@dataclass
class SpanSpec:
    """One span: ids, end time (ns) and attributes (str, int, float, bool or list values)."""

    trace_id: bytes
    span_id: bytes
    end_ns: int
    attributes: dict[str, object] = field(default_factory=dict)
    name: str = "chat"


def any_value(value: object) -> AnyValue:
    """A Python value as an OTLP AnyValue."""
    out = AnyValue()
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, list):
        out.array_value.values.extend(any_value(v) for v in value)
    else:
        raise TypeError(f"no AnyValue for {value!r}")
    return out


def key_values(attributes: dict[str, object]) -> list[KeyValue]:
    """Attributes as OTLP KeyValues."""
    return [KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]


def request(
    spans: list[SpanSpec], service: str | None = "chat-app", *, resources: int = 1
) -> ExportTraceServiceRequest:
    """An export request with the spans spread over ``resources`` resources."""
    req = ExportTraceServiceRequest()
    groups = [spans[i::resources] for i in range(resources)]
    for group in groups:
        rs = req.resource_spans.add()
        if service is not None:
            rs.resource.attributes.extend(key_values({"service.name": service}))
        ss = rs.scope_spans.add()
        ss.scope.name = "tests"
        for spec in group:
            span = Span(
                trace_id=spec.trace_id,
                span_id=spec.span_id,
                name=spec.name,
                start_time_unix_nano=spec.end_ns - 1_000_000,
                end_time_unix_nano=spec.end_ns,
                kind=Span.SPAN_KIND_CLIENT,
            )
            span.attributes.extend(key_values(spec.attributes))
            ss.spans.append(span)
    return req


def _hex_ids(node: Any) -> Any:
    """The protobuf JSON mapping writes bytes as base64; OTLP/JSON wants hex ids."""
    import base64

    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                out[key] = base64.b64decode(value).hex()
            else:
                out[key] = _hex_ids(value)
        return out
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    return node


def to_otlp_json(req: ExportTraceServiceRequest) -> dict[str, Any]:
    """The request in OTLP/JSON (lowerCamelCase, hex ids, int64 as strings)."""
    return _hex_ids(json_format.MessageToDict(req))  # type: ignore[no-any-return]


def genai_attributes(
    model: str = "gpt-4o-2024-08-06",
    input_tokens: object = 1200,
    output_tokens: object = 300,
    provider: str = "openai",
    **extra: object,
) -> dict[str, object]:
    """GenAI semantic-convention attributes of a chat call."""
    attributes: dict[str, object] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }
    attributes.update(extra)
    return {k: v for k, v in attributes.items() if v is not None}
