"""OTLP trace requests decoded and GenAI spans mapped to usage events (aggregations.otel)."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import orjson
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from aggregations.catalog import Catalog
from aggregations.events import InvalidEvent, UsageEvent, event_from_mapping
from aggregations.model_names import ModelResolver
from aggregations.otel import (
    DecodedTraces,
    GenAiSpan,
    InvalidOtlp,
    SpanMapper,
    dead_letter,
    decode_json,
    decode_protobuf,
    encode_response,
    event_id_of,
    status_body,
)
from tests.otlp_spans import SpanSpec, genai_attributes, request, to_otlp_json

ROOT = Path(__file__).resolve().parents[2]
CATALOG = Catalog.from_mapping(
    json.loads((ROOT / "aggregations" / "data" / "catalog.json").read_text("utf-8"))
)
NOW_MS = time.time_ns() // 1_000_000
END_NS = (NOW_MS - 60_000) * 1_000_000 + 123_456
TRACE = bytes(range(1, 17))


def span_id(i: int) -> bytes:
    """A distinct 8-byte span id."""
    return (1000 + i).to_bytes(8, "big")


@pytest.fixture(scope="module")
def mapper() -> SpanMapper:
    """A mapper over the shipped catalog."""
    return SpanMapper(ModelResolver(CATALOG))


def genai(i: int = 0, **attributes: object) -> GenAiSpan:
    """A decoded GenAI span with the given attributes (default: a gpt-4o chat)."""
    return GenAiSpan(TRACE, span_id(i), END_NS, attributes or genai_attributes(), "chat-app")


def test_a_chat_span_becomes_one_usage_event(mapper: SpanMapper) -> None:
    """Model resolved to the catalog, tokens, app, time = end, id from trace and span id;
    a known model keeps its catalog vendor."""
    mapped = mapper.map_span(genai(), now_ms=NOW_MS)
    assert mapped is not None
    assert mapped.outcome == UsageEvent(
        event_id=f"otel-{TRACE.hex()}-{span_id(0).hex()}",
        ts_ms=END_NS // 1_000_000,
        model="openai/gpt-4o",
        prompt_tokens=1200,
        completion_tokens=300,
        app="chat-app",
    )
    assert event_id_of(TRACE, span_id(0)) == mapped.outcome.event_id


def test_response_model_wins_over_request_model(mapper: SpanMapper) -> None:
    """gen_ai.response.model names the model that answered; request.model is the fallback."""
    both = genai(
        **{
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.usage.input_tokens": 1,
            "gen_ai.usage.output_tokens": 2,
        }
    )
    only_request = genai(
        **{
            "gen_ai.request.model": "claude-sonnet-4-5@20250929",
            "gen_ai.usage.input_tokens": 1,
            "gen_ai.usage.output_tokens": 2,
        }
    )
    assert _event(mapper, both).model == "openai/gpt-4o-mini"
    assert _event(mapper, only_request).model == "anthropic/claude-sonnet-4.5"


def _event(mapper: SpanMapper, span: GenAiSpan) -> UsageEvent:
    mapped = mapper.map_span(span, now_ms=NOW_MS)
    assert mapped is not None and isinstance(mapped.outcome, UsageEvent), mapped
    return mapped.outcome


def test_older_token_attribute_names_are_read(mapper: SpanMapper) -> None:
    """gen_ai.usage.prompt_tokens / completion_tokens, still emitted by older instrumentations."""
    span = genai(
        **{
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.prompt_tokens": 70,
            "gen_ai.usage.completion_tokens": 30,
        }
    )
    event = _event(mapper, span)
    assert (event.prompt_tokens, event.completion_tokens) == (70, 30)


def test_one_missing_count_is_zero(mapper: SpanMapper) -> None:
    """An embeddings span has input tokens only."""
    span = genai(
        **{
            "gen_ai.operation.name": "embeddings",
            "gen_ai.request.model": "text-embedding-3-small",
            "gen_ai.provider.name": "openai",
            "gen_ai.usage.input_tokens": 512,
        }
    )
    event = _event(mapper, span)
    assert (event.prompt_tokens, event.completion_tokens) == (512, 0)


def test_unknown_model_keeps_its_name_and_the_span_vendor(mapper: SpanMapper) -> None:
    """Counted under its own id; the vendor from gen_ai.provider.name, else gen_ai.system,
    named as the catalog names that vendor when it is one."""
    new = genai(**genai_attributes(model="acme-llm-7", provider="acme"))
    assert (_event(mapper, new).model, _event(mapper, new).vendor) == ("acme-llm-7", "acme")
    by_system = genai(
        **{
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-9-preview",
            "gen_ai.usage.input_tokens": 5,
            "gen_ai.usage.output_tokens": 5,
        }
    )
    assert _event(mapper, by_system).vendor == "OpenAI"
    no_provider = genai(
        **{"gen_ai.request.model": "x", "gen_ai.usage.input_tokens": 1}  # no vendor known
    )
    assert _event(mapper, no_provider).vendor is None


def test_integral_doubles_are_counts(mapper: SpanMapper) -> None:
    """JavaScript SDKs send every number as a double: 1200.0 is 1200 tokens."""
    event = _event(mapper, genai(**genai_attributes(input_tokens=1200.0, output_tokens=3.0)))
    assert (event.prompt_tokens, event.completion_tokens) == (1200, 3)


def test_spans_without_usage_are_skipped(mapper: SpanMapper) -> None:
    """A GenAI span with no token count (a failed call, a tool call) is not a usage event."""
    no_usage = genai(**{"gen_ai.request.model": "gpt-4o", "gen_ai.operation.name": "chat"})
    assert mapper.map_span(no_usage, now_ms=NOW_MS) is None
    traces = DecodedTraces([genai(1), no_usage], span_count=5)
    batch = mapper.map_traces(traces, now_ms=NOW_MS)
    assert (len(batch.events), len(batch.rejected), batch.skipped) == (1, 0, 4)


@pytest.mark.parametrize(
    ("overrides", "reason", "field"),
    [
        ({"gen_ai.usage.input_tokens": -5}, "negative_count", "prompt_tokens"),
        ({"gen_ai.usage.output_tokens": 10**16}, "absurd_count", "completion_tokens"),
        ({"gen_ai.usage.input_tokens": 9_000_000, "gen_ai.usage.output_tokens": 2_000_000},
         "absurd_count", None),
        ({"gen_ai.usage.input_tokens": "1200"}, "wrong_type", "prompt_tokens"),
        ({"gen_ai.usage.input_tokens": 12.5}, "wrong_type", "prompt_tokens"),
        ({"gen_ai.usage.input_tokens": True}, "wrong_type", "prompt_tokens"),
        ({"gen_ai.usage.input_tokens": [1, 2]}, "wrong_type", "prompt_tokens"),
        ({"gen_ai.request.model": None, "gen_ai.response.model": None},
         "missing_field", "model"),
        ({"gen_ai.response.model": 7}, "wrong_type", "model"),
        ({"gen_ai.response.model": "m" * 300}, "oversized", "model"),
    ],
)  # fmt: skip
def test_bad_values_get_the_event_reason_codes(
    mapper: SpanMapper, overrides: dict[str, object], reason: str, field: str | None
) -> None:
    """The same reason (and field) as the event the span maps to gets from the validator."""
    attributes = {**genai_attributes(), **overrides}
    attributes = {k: v for k, v in attributes.items() if v is not None}
    mapped = mapper.map_span(genai(**attributes), now_ms=NOW_MS)
    assert mapped is not None and isinstance(mapped.outcome, InvalidEvent)
    assert (mapped.outcome.reason, mapped.outcome.field) == (reason, field)
    with pytest.raises(InvalidEvent) as direct:
        event_from_mapping(mapped.fields, now_ms=NOW_MS)
    assert direct.value.reason == reason


@pytest.mark.parametrize(
    ("end_ns", "reason"),
    [(0, "bad_timestamp"), (1_700_000_000, "bad_timestamp"),
     ((NOW_MS + 3 * 86_400_000) * 1_000_000, "future_timestamp")],
    # Named, not numbered by value: the last value follows the clock, and parallel test
    # workers must collect the same test ids.
    ids=["no-end-time", "seconds-not-nanoseconds", "days-ahead"],
)  # fmt: skip
def test_end_times_are_checked_like_event_times(
    mapper: SpanMapper, end_ns: int, reason: str
) -> None:
    """No end time, one in seconds rather than nanoseconds, or days ahead."""
    span = GenAiSpan(TRACE, span_id(1), end_ns, genai_attributes())
    mapped = mapper.map_span(span, now_ms=NOW_MS)
    assert mapped is not None and isinstance(mapped.outcome, InvalidEvent)
    assert mapped.outcome.reason == reason


def test_a_span_without_ids_cannot_be_counted_once(mapper: SpanMapper) -> None:
    """No trace/span id, no event id: rejected as a missing event_id, never counted."""
    span = GenAiSpan(b"", b"", END_NS, genai_attributes())
    mapped = mapper.map_span(span, now_ms=NOW_MS)
    assert mapped is not None and isinstance(mapped.outcome, InvalidEvent)
    assert (mapped.outcome.reason, mapped.outcome.field) == ("missing_field", "event_id")


def test_protobuf_requests_decode_to_their_genai_spans() -> None:
    """Only spans with gen_ai.* attributes are kept; every span is counted; service.name
    comes from each span's own resource."""
    specs = [
        SpanSpec(TRACE, span_id(0), END_NS, genai_attributes()),
        SpanSpec(TRACE, span_id(1), END_NS, {"http.method": "POST"}, name="POST"),
        SpanSpec(TRACE, span_id(2), END_NS, genai_attributes(model="claude-haiku-4-5")),
    ]
    req = request(specs, "svc", resources=2)
    decoded = decode_protobuf(req.SerializeToString())
    assert decoded.span_count == 3
    assert [s.span_id for s in decoded.spans] == [span_id(0), span_id(2)]
    first = decoded.spans[0]
    assert (first.trace_id, first.end_time_unix_nano, first.service_name) == (TRACE, END_NS, "svc")
    assert first.attributes["gen_ai.usage.input_tokens"] == 1200
    assert "http.method" not in first.attributes


def test_json_requests_decode_like_protobuf() -> None:
    """OTLP/JSON (hex ids, int64 as strings, lowerCamelCase) gives the same spans."""
    specs = [
        SpanSpec(TRACE, span_id(i), END_NS + i, genai_attributes(input_tokens=10 + i))
        for i in range(3)
    ]
    req = request(specs)
    as_json = to_otlp_json(req)
    span = as_json["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["traceId"] == TRACE.hex() and isinstance(span["endTimeUnixNano"], str)
    assert decode_json(orjson.dumps(as_json)) == decode_protobuf(req.SerializeToString())


def test_json_snake_case_and_numbers_are_accepted() -> None:
    """The original proto field names and plain JSON numbers for int64, as receivers must."""

    def kv(key: str, **value: object) -> dict[str, object]:
        return {"key": key, "value": value}

    span = {
        "trace_id": TRACE.hex(),
        "span_id": span_id(0).hex(),
        "end_time_unix_nano": END_NS,
        "attributes": [
            kv("gen_ai.request.model", string_value="o3"),
            kv("gen_ai.usage.input_tokens", int_value=4),
            kv("gen_ai.usage.output_tokens", intValue="6"),
            kv("gen_ai.x", doubleValue="NaN"),
        ],
    }
    resource = {"attributes": [kv("service.name", string_value="svc")]}
    body = {"resource_spans": [{"resource": resource, "scope_spans": [{"spans": [span]}]}]}
    decoded = decode_json(orjson.dumps(body))
    assert decoded.span_count == 1
    (span,) = decoded.spans
    assert span.service_name == "svc" and span.end_time_unix_nano == END_NS
    assert span.attributes["gen_ai.usage.input_tokens"] == 4
    assert span.attributes["gen_ai.usage.output_tokens"] == 6


@pytest.mark.parametrize(
    "body",
    [
        b"",  # an empty request is valid protobuf: no spans
    ],
)
def test_empty_protobuf_is_an_empty_request(body: bytes) -> None:
    """The exporters never send one, but it is a valid (empty) message."""
    assert decode_protobuf(body) == DecodedTraces([], 0)


def test_truncated_and_foreign_protobuf_is_invalid() -> None:
    """Cut in the middle of a span, or JSON/gzip sent as protobuf: InvalidOtlp (a 400)."""
    good = request([SpanSpec(TRACE, span_id(0), END_NS, genai_attributes())]).SerializeToString()
    for bad in (good[: len(good) // 2], good[:-1], b'{"resourceSpans": []}', gzip.compress(good)):
        with pytest.raises(InvalidOtlp):
            decode_protobuf(bad)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"resourceSpans": {}}',
        b'{"resourceSpans": [1]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"endTimeUnixNano": "soon",'
        b' "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "x"}}]}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": 1}]}]}]}]}',
    ],
)
def test_malformed_json_is_invalid(body: bytes) -> None:
    """Not JSON, or not the shape of an ExportTraceServiceRequest: InvalidOtlp (a 400)."""
    with pytest.raises(InvalidOtlp):
        decode_json(body)


def test_bad_hex_ids_reject_only_their_span(mapper: SpanMapper) -> None:
    """A span whose ids are not hex is rejected alone; the request's other spans count."""
    req = to_otlp_json(
        request([SpanSpec(TRACE, span_id(i), END_NS, genai_attributes()) for i in range(2)])
    )
    req["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "zz" * 8
    batch = mapper.map_traces(decode_json(orjson.dumps(req)), now_ms=NOW_MS)
    assert [e.event_id for e in batch.events] == [event_id_of(TRACE, span_id(1))]
    assert [m.outcome.reason for m in batch.rejected] == ["missing_field"]  # type: ignore[union-attr]


def test_batch_message_names_examples(mapper: SpanMapper) -> None:
    """The partial-success message counts the rejected spans and shows a few reasons."""
    spans = [genai(i, **genai_attributes(input_tokens=-i - 1)) for i in range(5)]
    batch = mapper.map_traces(DecodedTraces(spans, 5), now_ms=NOW_MS)
    message = batch.message()
    assert message.startswith("5 GenAI span(s) rejected: span ")
    assert message.count("negative_count") == 3 and message.endswith("and 2 more")


def test_dead_letters_carry_the_event_reason_and_a_stable_source(mapper: SpanMapper) -> None:
    """Value: the event as built from the span; headers like stage 1's; source by span."""
    mapped = mapper.map_span(genai(3, **genai_attributes(input_tokens=-5)), now_ms=NOW_MS)
    assert mapped is not None
    letter = dead_letter(mapped)
    assert letter.key == event_id_of(TRACE, span_id(3)).encode()
    assert orjson.loads(letter.value)["prompt_tokens"] == -5
    headers = dict(letter.headers)
    assert headers["reason"] == b"negative_count"
    assert headers["detail"].startswith(b"negative_count: 'prompt_tokens'")
    assert headers["source"] == f"otlp/{TRACE.hex()}/{span_id(3).hex()}".encode()
    again = mapper.map_span(genai(3, **genai_attributes(input_tokens=-5)), now_ms=NOW_MS)
    assert again is not None and dead_letter(again) == letter

    odd = GenAiSpan(b"", b"", END_NS, genai_attributes(input_tokens=b"\x00\x01"))
    odd_mapped = mapper.map_span(odd, now_ms=NOW_MS)
    assert odd_mapped is not None
    odd_letter = dead_letter(odd_mapped)
    assert odd_letter.key is None
    assert dict(odd_letter.headers)["source"].startswith(b"otlp/sha256/")
    assert orjson.loads(odd_letter.value)["prompt_tokens"] == "AAE="


def test_responses_follow_otlp() -> None:
    """ExportTraceServiceResponse, with partial_success only when spans were rejected."""
    assert ExportTraceServiceResponse.FromString(encode_response(0, "", as_json=False)) == (
        ExportTraceServiceResponse()
    )
    partial = ExportTraceServiceResponse.FromString(encode_response(2, "why", as_json=False))
    assert (partial.partial_success.rejected_spans, partial.partial_success.error_message) == (
        2,
        "why",
    )
    assert orjson.loads(encode_response(0, "", as_json=True)) == {}
    assert orjson.loads(encode_response(2, "why", as_json=True)) == {
        "partialSuccess": {"rejectedSpans": "2", "errorMessage": "why"}
    }


@pytest.mark.parametrize("message", ["", "bad body", "é" * 200])
def test_status_bodies_are_google_rpc_status(message: str) -> None:
    """The hand-written Status encoding parses as the real message."""
    status = Status.FromString(status_body(3, message, as_json=False))
    assert (status.code, status.message) == (3, message)
    assert orjson.loads(status_body(14, message, as_json=True)) == {
        "code": 14,
        "message": message,
    }
