"""OpenTelemetry GenAI spans as usage events: OTLP trace requests decoded, spans mapped.

Pure: bytes in, events and verdicts out. The OTLP/HTTP receiver (``streams/http/otlp.py``)
and the worker's bridge from a Collector's Kafka topic (``streams/worker/span_bridge.py``)
both decode an ``ExportTraceServiceRequest`` here and map it the same way, so a span counts
the same whichever way it came, and once, by its event id.

A span becomes one usage event (GenAI semantic conventions):

* ``event_id``: ``otel-<trace id hex>-<span id hex>``, so an export sent again (a retry, the
  Collector's Kafka topic *and* OTLP/HTTP) is a duplicate by id;
* ``model``: ``gen_ai.response.model``, else ``gen_ai.request.model``, resolved to a catalog
  id by :class:`~aggregations.model_names.ModelResolver` (kept as sent when unknown);
* ``prompt_tokens`` / ``completion_tokens``: ``gen_ai.usage.input_tokens`` /
  ``gen_ai.usage.output_tokens``, else the older ``gen_ai.usage.prompt_tokens`` /
  ``gen_ai.usage.completion_tokens``; one of the two missing counts as 0 (an embeddings
  call has no output tokens);
* ``vendor``: for a model the catalog does not know, ``gen_ai.provider.name``, else
  ``gen_ai.system`` (a known model keeps its catalog vendor);
* ``app``: the resource's ``service.name``; ``ts``: the span's end time.

A span with no token count is not a usage record (an HTTP span, a tool call, a failed
call): it is skipped, not rejected. A span with token counts is validated as an event
(:func:`aggregations.events.event_from_mapping`), so bad values get the same reason codes.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from aggregations.errors import InvalidInput
from aggregations.events import DEFAULT_LIMITS, InvalidEvent, Limits, UsageEvent, event_from_mapping
from aggregations.model_names import ModelResolver

__all__ = [
    "DeadLetter",
    "DecodedTraces",
    "GenAiSpan",
    "InvalidOtlp",
    "MappedSpan",
    "SpanBatch",
    "SpanMapper",
    "dead_letter",
    "decode_json",
    "decode_protobuf",
    "encode_response",
    "event_id_of",
    "status_body",
]

GENAI_PREFIX = "gen_ai."
SERVICE_NAME = "service.name"
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
MODEL_KEYS = ("gen_ai.response.model", "gen_ai.request.model")
PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system")
#: A partial-success message names this many rejected spans; the dead-letter topic has all.
MESSAGE_EXAMPLES = 3


class InvalidOtlp(InvalidInput):
    """A body that is not an OTLP ``ExportTraceServiceRequest`` (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class GenAiSpan:
    """A span reduced to what the mapping reads: its ids, end time and GenAI attributes."""

    trace_id: bytes
    span_id: bytes
    end_time_unix_nano: int
    #: The span's ``gen_ai.*`` attributes, values as Python scalars (lists, dicts for
    #: array and key-value attributes).
    attributes: Mapping[str, object]
    #: The resource's ``service.name`` when it is a string.
    service_name: str | None = None


@dataclass(frozen=True, slots=True)
class DecodedTraces:
    """An export request: its spans that have GenAI attributes, and how many spans in all."""

    spans: list[GenAiSpan]
    span_count: int


def event_id_of(trace_id: bytes, span_id: bytes) -> str:
    """The usage event id of a span: stable across resends of the same span."""
    return f"otel-{trace_id.hex()}-{span_id.hex()}"


# Protobuf ------------------------------------------------------------------------------------
def _pb_value(value: Any) -> object:
    """An OTLP ``AnyValue`` as a Python value."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_pb_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def decode_protobuf(body: bytes) -> DecodedTraces:
    """Decode a protobuf ``ExportTraceServiceRequest``; raises :class:`InvalidOtlp`."""
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise InvalidOtlp(f"not an OTLP ExportTraceServiceRequest protobuf: {exc}") from None
    spans: list[GenAiSpan] = []
    count = 0
    for resource_spans in request.resource_spans:
        service: str | None = None
        for kv in resource_spans.resource.attributes:
            if kv.key == SERVICE_NAME and kv.value.WhichOneof("value") == "string_value":
                service = kv.value.string_value
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                count += 1
                attributes = {
                    kv.key: _pb_value(kv.value)
                    for kv in span.attributes
                    if kv.key.startswith(GENAI_PREFIX)
                }
                if attributes:
                    spans.append(
                        GenAiSpan(
                            span.trace_id,
                            span.span_id,
                            span.end_time_unix_nano,
                            attributes,
                            service,
                        )
                    )
    return DecodedTraces(spans, count)


# JSON ----------------------------------------------------------------------------------------
# OTLP/JSON is the protobuf JSON mapping with lowerCamelCase names, but ids in hex instead of
# base64; receivers must also accept the original snake_case names.
def _get(obj: Mapping[str, object], camel: str, snake: str) -> object:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _list(obj: Mapping[str, object], camel: str, snake: str, where: str) -> list[object]:
    value = _get(obj, camel, snake)
    if value is None:
        return []
    if type(value) is not list:
        raise InvalidOtlp(f"{where}.{camel} must be an array")
    return value


def _object(value: object, where: str) -> Mapping[str, object]:
    if type(value) is not dict:
        raise InvalidOtlp(f"{where} must be an object")
    return value


def _json_int(value: object, where: str) -> int:
    """An int64 of the protobuf JSON mapping: a number or a decimal string."""
    if type(value) is int:
        return value
    if type(value) is str:
        try:
            return int(value)
        except ValueError:
            pass
    elif type(value) is float and value.is_integer():
        return int(value)
    raise InvalidOtlp(f"{where} must be an integer, got {value!r:.40}")


def _json_value(value: object, where: str) -> object:
    """An OTLP/JSON ``AnyValue`` as a Python value."""
    if value is None:
        return None
    obj = _object(value, where)
    for camel, snake in (("stringValue", "string_value"), ("boolValue", "bool_value")):
        if camel in obj or snake in obj:
            return _get(obj, camel, snake)
    if "intValue" in obj or "int_value" in obj:
        return _json_int(_get(obj, "intValue", "int_value"), where + ".intValue")
    if "doubleValue" in obj or "double_value" in obj:
        double = _get(obj, "doubleValue", "double_value")
        if type(double) is str:  # "NaN", "Infinity", "-Infinity", or a number as text
            try:
                return float(double)
            except ValueError:
                raise InvalidOtlp(f"{where}.doubleValue is not a number") from None
        return double
    if "arrayValue" in obj or "array_value" in obj:
        array = _object(_get(obj, "arrayValue", "array_value") or {}, where + ".arrayValue")
        items = _list(array, "values", "values", where + ".arrayValue")
        return [_json_value(item, where + ".arrayValue.values[]") for item in items]
    if "kvlistValue" in obj or "kvlist_value" in obj:
        kvlist = _object(_get(obj, "kvlistValue", "kvlist_value") or {}, where + ".kvlistValue")
        return _json_attributes(_list(kvlist, "values", "values", where), where + ".kvlistValue")
    if "bytesValue" in obj or "bytes_value" in obj:
        return _get(obj, "bytesValue", "bytes_value")
    return None


def _json_attributes(
    items: list[object], where: str, prefix: str | None = None
) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        kv = _object(item, where + "[]")
        key = kv.get("key")
        if type(key) is not str:
            raise InvalidOtlp(f"{where}[].key must be a string")
        if prefix is None or key.startswith(prefix):
            out[key] = _json_value(kv.get("value"), f"{where}[{key!r}].value")
    return out


def _json_id(value: object, size: int) -> bytes:
    """A hex trace or span id; empty when absent or malformed (the span is then rejected)."""
    if type(value) is not str or len(value) != 2 * size:
        return b""
    try:
        return bytes.fromhex(value)
    except ValueError:
        return b""


def decode_json(body: bytes) -> DecodedTraces:
    """Decode an OTLP/JSON ``ExportTraceServiceRequest``; raises :class:`InvalidOtlp`."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidOtlp(f"not JSON: {exc}") from None
    root = _object(doc, "the body")
    spans: list[GenAiSpan] = []
    count = 0
    for rs_item in _list(root, "resourceSpans", "resource_spans", "request"):
        resource_spans = _object(rs_item, "resourceSpans[]")
        resource = _object(_get(resource_spans, "resource", "resource") or {}, "resource")
        resource_attrs = _json_attributes(
            _list(resource, "attributes", "attributes", "resource"), "resource.attributes"
        )
        service = resource_attrs.get(SERVICE_NAME)
        service_name = service if type(service) is str else None
        for ss_item in _list(resource_spans, "scopeSpans", "scope_spans", "resourceSpans[]"):
            scope_spans = _object(ss_item, "scopeSpans[]")
            for span_item in _list(scope_spans, "spans", "spans", "scopeSpans[]"):
                span = _object(span_item, "spans[]")
                count += 1
                attributes = _json_attributes(
                    _list(span, "attributes", "attributes", "spans[]"),
                    "spans[].attributes",
                    GENAI_PREFIX,
                )
                if not attributes:
                    continue
                end = _get(span, "endTimeUnixNano", "end_time_unix_nano")
                spans.append(
                    GenAiSpan(
                        _json_id(_get(span, "traceId", "trace_id"), 16),
                        _json_id(_get(span, "spanId", "span_id"), 8),
                        0 if end is None else _json_int(end, "spans[].endTimeUnixNano"),
                        attributes,
                        service_name,
                    )
                )
    return DecodedTraces(spans, count)


# Mapping -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MappedSpan:
    """A GenAI span with usage: the event fields built from it and their verdict."""

    span: GenAiSpan
    #: The usage event as a JSON object (what a dead letter carries).
    fields: dict[str, object]
    outcome: UsageEvent | InvalidEvent


@dataclass(slots=True)
class SpanBatch:
    """The verdicts on every span of a request."""

    events: list[UsageEvent] = field(default_factory=list)
    rejected: list[MappedSpan] = field(default_factory=list)
    #: Spans without GenAI usage (no token count): neither counted nor rejected.
    skipped: int = 0

    def message(self) -> str:
        """A partial-success message: how many spans were rejected, with examples."""
        examples = "; ".join(
            f"span {m.span.span_id.hex() or '?'}: {m.outcome}"
            for m in self.rejected[:MESSAGE_EXAMPLES]
        )
        more = len(self.rejected) - MESSAGE_EXAMPLES
        tail = f"; and {more} more" if more > 0 else ""
        return f"{len(self.rejected)} GenAI span(s) rejected: {examples}{tail}"


def _first(attributes: Mapping[str, object], keys: tuple[str, ...]) -> object:
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            return value
    return None


def _count(value: object) -> object:
    """A token count as the event schema wants it: an integral double (JavaScript SDKs send
    numbers as doubles) becomes an int; anything else is left for validation to judge."""
    if type(value) is float and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


class SpanMapper:
    """Maps GenAI spans to usage events (module docstring: the rules)."""

    __slots__ = ("limits", "resolver")

    def __init__(self, resolver: ModelResolver, limits: Limits = DEFAULT_LIMITS) -> None:
        self.resolver = resolver
        self.limits = limits

    def fields(self, span: GenAiSpan) -> dict[str, object] | None:
        """The usage event of ``span`` as a JSON object, unvalidated; None without usage."""
        attributes = span.attributes
        prompt = _first(attributes, INPUT_TOKENS)
        completion = _first(attributes, OUTPUT_TOKENS)
        if prompt is None and completion is None:
            return None
        out: dict[str, object] = {}
        if len(span.trace_id) == 16 and len(span.span_id) == 8:
            out["event_id"] = event_id_of(span.trace_id, span.span_id)
        out["ts"] = span.end_time_unix_nano // 1_000_000
        model = _first(attributes, MODEL_KEYS)
        provider = _first(attributes, PROVIDER_KEYS)
        provider_name = provider if type(provider) is str else None
        if type(model) is str and len(model) <= self.limits.max_name_length:
            resolved = self.resolver.resolve(model, provider_name)
            if resolved is not None:
                model = resolved
            elif provider_name is not None:
                out["vendor"] = self.resolver.vendor_name(provider_name)
        out["model"] = model
        out["prompt_tokens"] = _count(0 if prompt is None else prompt)
        out["completion_tokens"] = _count(0 if completion is None else completion)
        if span.service_name:
            out["app"] = span.service_name
        return out

    def map_span(self, span: GenAiSpan, *, now_ms: int) -> MappedSpan | None:
        """The event of ``span`` and its verdict; None for a span without usage."""
        fields = self.fields(span)
        if fields is None:
            return None
        outcome: UsageEvent | InvalidEvent
        if "event_id" not in fields:
            outcome = InvalidEvent(
                "missing_field",
                "the span has no valid trace id (16 bytes) and span id (8 bytes) "
                "to derive 'event_id' from",
                "event_id",
            )
        else:
            try:
                outcome = event_from_mapping(fields, now_ms=now_ms, limits=self.limits)
            except InvalidEvent as exc:
                outcome = exc
        return MappedSpan(span, fields, outcome)

    def map_traces(self, traces: DecodedTraces, *, now_ms: int) -> SpanBatch:
        """Verdicts on every span of a decoded request."""
        batch = SpanBatch(skipped=traces.span_count - len(traces.spans))
        for span in traces.spans:
            mapped = self.map_span(span, now_ms=now_ms)
            if mapped is None:
                batch.skipped += 1
            elif isinstance(mapped.outcome, UsageEvent):
                batch.events.append(mapped.outcome)
            else:
                batch.rejected.append(mapped)
        return batch


def _jsonable(value: object) -> object:
    # Attribute values orjson cannot write: bytes (bytesValue) as base64, as OTLP/JSON does.
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return repr(value)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """The record a rejected span leaves on the dead-letter topic."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def dead_letter(mapped: MappedSpan) -> DeadLetter:
    """A rejected span's dead letter: the event built from it as JSON, keyed by its id, with
    the headers stage 1 writes (``reason``, ``detail``, ``source``) and the span's ids.

    ``source``, which readers of the dead-letter topic dedup by, is the span itself
    (``otlp/<trace id>/<span id>``): a span sent again, by HTTP or through Kafka, has the
    same one.
    """
    assert isinstance(mapped.outcome, InvalidEvent)
    span = mapped.span
    value = orjson.dumps(mapped.fields, default=_jsonable)
    event_id = mapped.fields.get("event_id")
    if type(event_id) is str:
        source = f"otlp/{span.trace_id.hex()}/{span.span_id.hex()}"
        key: bytes | None = event_id.encode()
    else:
        # No usable ids: the content tells one such span from another, and stays the same
        # when the span is sent again.
        source = f"otlp/sha256/{hashlib.sha256(value).hexdigest()[:32]}"
        key = None
    headers = [
        ("reason", mapped.outcome.reason.encode()),
        ("detail", str(mapped.outcome).encode("utf-8", "replace")[:1000]),
        ("source", source.encode()),
        ("otel-span", f"{span.trace_id.hex()}/{span.span_id.hex()}".encode()),
    ]
    return DeadLetter(key, value, headers)


# Responses -----------------------------------------------------------------------------------
def encode_response(rejected: int, message: str, *, as_json: bool) -> bytes:
    """An ``ExportTraceServiceResponse``, with ``partial_success`` when spans were rejected."""
    if as_json:
        if not rejected:
            return b"{}"
        # The protobuf JSON mapping writes int64 as a string.
        partial = {"rejectedSpans": str(rejected), "errorMessage": message}
        return orjson.dumps({"partialSuccess": partial})
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    data: bytes = response.SerializeToString()
    return data


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def status_body(code: int, message: str, *, as_json: bool) -> bytes:
    """A ``google.rpc.Status`` (the body OTLP/HTTP error responses carry).

    Its two fields are written by hand (``code`` = 1, varint; ``message`` = 2, string), which
    saves a dependency on the googleapis protos for one message.
    """
    if as_json:
        return orjson.dumps({"code": code, "message": message})
    text = message.encode("utf-8")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text
