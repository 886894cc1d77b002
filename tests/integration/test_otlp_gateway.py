"""OpenTelemetry GenAI spans into the gateway's ``POST /v1/traces``, sent by real clients:
the OTel SDK's OTLP/HTTP exporter, the OpenAI SDK instrumented by
opentelemetry-instrumentation-openai-v2, LiteLLM's OTel integration. Exact totals in Redis,
resends counted once, malformed bodies refused with clear errors and nothing valid lost."""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from aggregations.events import UsageEvent
from aggregations.otel import event_id_of
from streams.settings import Settings
from streams.topics import ensure_topics
from tests.integration.kafka_read import read_topic, read_usage_events
from tests.integration.private_stack import (
    Expected,
    running_gateway,
    wait_for_totals,
    wait_until,
    worker_metric,
)
from tests.integration.processes import WorkerProcess, free_port
from tests.otlp_spans import SpanSpec, genai_attributes, request, to_otlp_json

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
NOW_NS = time.time_ns()

# (model as the span names it, provider, catalog id it is counted under)
MODELS = [
    ("gpt-4o-2024-08-06", "openai", "openai/gpt-4o"),
    ("claude-sonnet-4-5@20250929", "gcp.vertex_ai", "anthropic/claude-sonnet-4.5"),
    ("us.anthropic.claude-3-5-haiku-20241022-v1:0", "aws.bedrock", "anthropic/claude-3.5-haiku"),
    ("openai/gpt-4o-mini", "openai", "openai/gpt-4o-mini"),
    ("acme-llm-7", "acme", "acme-llm-7"),  # unknown: counted under its own id
]


def span_event(span: ReadableSpan, model: str) -> UsageEvent:
    """The usage event a finished SDK span must become (ids, end time, tokens as set)."""
    assert span.context is not None and span.end_time is not None and span.attributes
    attributes = span.attributes
    prompt = attributes.get(
        "gen_ai.usage.input_tokens", attributes.get("gen_ai.usage.prompt_tokens")
    )
    completion = attributes.get(
        "gen_ai.usage.output_tokens", attributes.get("gen_ai.usage.completion_tokens")
    )
    assert isinstance(prompt, int) and isinstance(completion, int)
    return UsageEvent(
        event_id=event_id_of(
            span.context.trace_id.to_bytes(16, "big"), span.context.span_id.to_bytes(8, "big")
        ),
        ts_ms=span.end_time // 1_000_000,
        model=model,
        prompt_tokens=prompt,
        completion_tokens=completion,
    )


def sdk_spans(
    count: int, service: str = "otel-sdk-test"
) -> tuple[list[ReadableSpan], list[UsageEvent]]:
    """``count`` GenAI chat spans (and as many plain HTTP spans) made with the OTel SDK, and the
    events they stand for."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tokenboard-tests")
    expected: dict[int, str] = {}
    for i in range(count):
        name, provider_name, counted_as = MODELS[i % len(MODELS)]
        end = NOW_NS - (count - i) * 1_000_000
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": name,
            "gen_ai.response.model": name,
        }
        if i % 7 == 3:  # older instrumentations: gen_ai.system and prompt/completion names
            attributes |= {
                "gen_ai.system": provider_name,
                "gen_ai.usage.prompt_tokens": 500 + i,
                "gen_ai.usage.completion_tokens": 40 + i % 13,
            }
        else:
            attributes |= {
                "gen_ai.provider.name": provider_name,
                "gen_ai.usage.input_tokens": 1000 + i,
                "gen_ai.usage.output_tokens": 100 + i % 17,
            }
        with tracer.start_as_current_span(
            "POST /chat", kind=SpanKind.SERVER, end_on_exit=False
        ) as parent:
            span = tracer.start_span(f"chat {name}", kind=SpanKind.CLIENT, attributes=attributes)
            span.end(end_time=end)
            assert span.get_span_context().span_id not in expected
            expected[span.get_span_context().span_id] = counted_as
            parent.end(end_time=end + 1000)
    spans = list(memory.get_finished_spans())
    provider.shutdown()
    events = [
        span_event(s, expected[s.context.span_id])
        for s in spans
        if s.context is not None and s.context.span_id in expected
    ]
    assert len(events) == count and len(spans) == 2 * count
    return spans, events


async def export(exporter: OTLPSpanExporter, spans: Sequence[ReadableSpan]) -> SpanExportResult:
    """The SDK exporter is blocking: run it off the loop that serves the in-process gateway."""
    return await asyncio.to_thread(exporter.export, spans)


async def test_sdk_exporter_spans_count_exactly_and_a_resend_counts_once(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """300 GenAI spans (five model spellings, new and old attribute names) and 300 HTTP
    spans, exported by the OTel SDK's OTLP/HTTP exporter in batches, protobuf and gzip; then
    the same batches exported again: each GenAI span counted once, under its catalog id."""
    await ensure_topics(settings)
    worker = start_worker("w1")
    spans, events = sdk_spans(300)
    async with running_gateway(settings) as client:
        url = str(client.make_url("/v1/traces"))
        plain = OTLPSpanExporter(endpoint=url, timeout=30)
        zipped = OTLPSpanExporter(endpoint=url, timeout=30, compression=Compression.Gzip)
        for start in range(0, len(spans), 100):
            batch = spans[start : start + 100]
            exporter = plain if start % 200 == 0 else zipped
            assert await export(exporter, batch) == SpanExportResult.SUCCESS
        expected = Expected.of(events)
        assert {m for _, m in expected.cells} == {m for _, _, m in MODELS}
        await wait_for_totals(settings, expected, 90, [worker])
        # The whole export once more (an exporter retry after a lost answer, say).
        for start in range(0, len(spans), 150):
            assert await export(zipped, spans[start : start + 150]) == SpanExportResult.SUCCESS
        plain.shutdown()
        zipped.shutdown()

    async def resends_read() -> bool:
        return worker_metric(worker, "tokenboard_duplicates_dropped_total") >= 300

    await wait_until(resends_read, timeout_s=60, what="the 300 resent spans read and dropped")
    await wait_for_totals(settings, expected, 10, [worker])
    assert worker_metric(worker, "tokenboard_duplicates_dropped_total") == 300
    assert worker_metric(worker, "tokenboard_events_counted_total") == 300


async def test_otlp_json_with_partial_success_loses_nothing_valid(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """OTLP/JSON and protobuf requests mixing valid GenAI spans with negative, absurd and
    mistyped token counts: 200 with partial_success naming the rejected spans, each
    dead-lettered with its event reason, every valid span counted exactly."""
    await ensure_topics(settings)
    worker = start_worker("w1")
    trace = os.urandom(16)
    end = NOW_NS - 5_000_000_000
    bad = {
        100: ({"gen_ai.usage.input_tokens": -5}, "negative_count"),
        101: ({"gen_ai.usage.output_tokens": 10**16}, "absurd_count"),
        102: ({"gen_ai.usage.input_tokens": "12"}, "wrong_type"),
        103: ({"gen_ai.usage.input_tokens": 20_000_000}, "absurd_count"),
    }
    valid = [
        SpanSpec(trace, (i + 1).to_bytes(8, "big"), end + i, genai_attributes(input_tokens=300 + i))
        for i in range(40)
    ]
    rejected = [
        SpanSpec(trace, i.to_bytes(8, "big"), end, {**genai_attributes(), **overrides})
        for i, (overrides, _) in bad.items()
    ]
    no_usage = [
        SpanSpec(trace, (200 + i).to_bytes(8, "big"), end, {"http.route": "/"}) for i in range(5)
    ]
    json_request = request(valid[:20] + rejected[:2] + no_usage, "json-app")
    proto_request = request(valid[20:] + rejected[2:], "proto-app")
    async with running_gateway(settings) as client:
        response = await client.post(
            "/v1/traces", data=orjson.dumps(to_otlp_json(json_request)), headers=JSON
        )
        assert response.status == 200
        assert response.content_type == "application/json"
        body = await response.json()
        assert body["partialSuccess"]["rejectedSpans"] == "2"
        message = body["partialSuccess"]["errorMessage"]
        assert message.startswith("2 GenAI span(s) rejected")
        assert "negative_count" in message and "absurd_count" in message

        response = await client.post(
            "/v1/traces",
            data=gzip.compress(proto_request.SerializeToString()),
            headers={**PROTOBUF, "Content-Encoding": "gzip"},
        )
        assert response.status == 200
        assert response.content_type == "application/x-protobuf"
        answer = ExportTraceServiceResponse.FromString(await response.read())
        assert answer.partial_success.rejected_spans == 2
        assert "wrong_type" in answer.partial_success.error_message

    events = [
        UsageEvent(
            event_id_of(trace, s.span_id), s.end_ns // 1_000_000, "openai/gpt-4o", 300 + i, 300
        )
        for i, s in enumerate(valid)
    ]
    await wait_for_totals(settings, Expected.of(events), 90, [worker])

    async def dead_letters() -> dict[str, str] | None:
        records = await read_topic(settings, settings.dead_letter_topic)
        got = {
            dict(r.headers)["otel-span"].decode(): dict(r.headers)["reason"].decode()
            for r in records
        }
        return got if len(got) >= len(bad) else None

    letters = await wait_until(dead_letters, timeout_s=30, what="the four dead letters")
    assert letters == {
        f"{trace.hex()}/{i.to_bytes(8, 'big').hex()}": r for i, (_, r) in bad.items()
    }
    assert worker_metric(worker, "tokenboard_events_counted_total") == 40


async def test_malformed_bodies_get_clear_errors_and_change_nothing(settings: Settings) -> None:
    """Truncated protobuf and broken JSON: 400 with a google.rpc.Status saying why; a form
    or text body: 415; a body over the limit, declared, chunked or inflated from gzip: 413.
    None of them puts anything on the usage or dead-letter topic."""
    small = settings.replace(max_request_bytes=64 * 1024)
    await ensure_topics(small)
    trace = os.urandom(16)
    spans = [
        SpanSpec(trace, (i + 1).to_bytes(8, "big"), NOW_NS, genai_attributes()) for i in range(5)
    ]
    good = request(spans).SerializeToString()
    async with running_gateway(small) as client:
        response = await client.post("/v1/traces", data=good[: len(good) - 7], headers=PROTOBUF)
        assert response.status == 400
        status = Status.FromString(await response.read())
        assert status.code == 3 and "not an OTLP ExportTraceServiceRequest" in status.message

        response = await client.post("/v1/traces", data=b'{"resourceSpans": [1]', headers=JSON)
        assert response.status == 400
        assert (await response.json())["message"].startswith("not JSON")

        response = await client.post(
            "/v1/traces",
            data=b"not gzip at all",
            headers={**PROTOBUF, "Content-Encoding": "gzip", "Connection": "close"},
        )
        assert response.status == 400
        assert "could not be read" in Status.FromString(await response.read()).message

        for content_type in ("application/x-www-form-urlencoded", "text/plain", "application/grpc"):
            response = await client.post(
                "/v1/traces", data=good, headers={"Content-Type": content_type}
            )
            assert response.status == 415
            assert "application/x-protobuf" in (await response.json())["message"]

        huge = os.urandom(200 * 1024)
        response = await client.post("/v1/traces", data=huge, headers=PROTOBUF)
        assert response.status == 413
        assert "65536" in Status.FromString(await response.read()).message

        async def chunks() -> Any:
            for _ in range(10):
                yield b"\x00" * 16 * 1024

        response = await client.post("/v1/traces", data=chunks(), headers=PROTOBUF)
        assert response.status == 413

        bomb = gzip.compress(b"\x00" * (4 * 1024 * 1024))
        assert len(bomb) < 64 * 1024
        response = await client.post(
            "/v1/traces", data=bomb, headers={**PROTOBUF, "Content-Encoding": "gzip"}
        )
        assert response.status == 413

        # An empty export is valid, and so is one with no GenAI span at all.
        response = await client.post("/v1/traces", data=b"", headers=PROTOBUF)
        assert response.status == 200
        assert ExportTraceServiceResponse.FromString(await response.read()) == (
            ExportTraceServiceResponse()
        )
        plain = request([SpanSpec(trace, b"\x09" * 8, NOW_NS, {"http.route": "/x"})])
        response = await client.post("/v1/traces", data=plain.SerializeToString(), headers=PROTOBUF)
        assert response.status == 200
    assert await read_topic(small, small.usage_topic) == []
    assert await read_topic(small, small.dead_letter_topic) == []


async def test_kafka_down_answers_503_with_retry_after(settings: Settings) -> None:
    """Nothing acknowledged without Kafka: 503, Retry-After, a Status body; the exporter
    retries such an answer."""
    down = settings.replace(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    spans = [SpanSpec(os.urandom(16), b"\x01" * 8, NOW_NS, genai_attributes())]
    async with running_gateway(down, wait_ready=False) as client:
        response = await client.post(
            "/v1/traces", data=request(spans).SerializeToString(), headers=PROTOBUF
        )
        assert response.status == 503
        assert response.headers["Retry-After"] == "5"
        assert "no span was accepted" in Status.FromString(await response.read()).message
        # Spans without usage need no Kafka: accepted at once.
        plain = request([SpanSpec(os.urandom(16), b"\x02" * 8, NOW_NS, {"http.route": "/"})])
        response = await client.post("/v1/traces", data=plain.SerializeToString(), headers=PROTOBUF)
        assert response.status == 200


async def test_api_keys_guard_the_traces_route(settings: Settings) -> None:
    """The gateway's API keys: 401 without one, accepted with one (Bearer or X-API-Key, as
    OTEL_EXPORTER_OTLP_HEADERS sends them)."""
    keyed = settings.replace(api_keys="k1,k2")
    await ensure_topics(keyed)
    trace = os.urandom(16)
    spans = [SpanSpec(trace, b"\x03" * 8, NOW_NS - 10**9, genai_attributes())]
    body = request(spans).SerializeToString()
    async with running_gateway(keyed) as client:
        response = await client.post("/v1/traces", data=body, headers=PROTOBUF)
        assert response.status == 401
        assert "API key" in Status.FromString(await response.read()).message
        response = await client.post(
            "/v1/traces", data=body, headers={**PROTOBUF, "Authorization": "Bearer wrong"}
        )
        assert response.status == 401
        for headers in ({"Authorization": "Bearer k2"}, {"X-API-Key": "k1"}):
            response = await client.post("/v1/traces", data=body, headers={**PROTOBUF, **headers})
            assert response.status == 200
        exporter = OTLPSpanExporter(
            endpoint=str(client.make_url("/v1/traces")), headers={"Authorization": "Bearer k1"}
        )
        sdk, _ = sdk_spans(3)
        assert await export(exporter, sdk) == SpanExportResult.SUCCESS
        exporter.shutdown()
    records = await read_topic(keyed, keyed.usage_topic)
    assert len(records) == 2 + 3


# A local OpenAI-compatible server ----------------------------------------------------------
def fake_openai(usages: list[tuple[int, int]]) -> web.Application:
    """Chat completions answering with the next (prompt, completion) usage of ``usages``."""
    served: list[int] = []

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        prompt, completion = usages[len(served) % len(usages)]
        served.append(1)
        return web.json_response(
            {
                "id": f"chatcmpl-{len(served)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": "gpt-4o-2024-08-06" if body["model"] == "gpt-4o" else body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hello"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def test_openai_sdk_instrumented_calls_count_exactly(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """The openai SDK, instrumented by opentelemetry-instrumentation-openai-v2, calls a local
    OpenAI-compatible server; its spans go through the SDK's OTLP exporter to the gateway:
    Redis shows exactly the usage the server answered, under openai/gpt-4o and
    openai/gpt-4o-mini."""
    import openai
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    await ensure_topics(settings)
    worker = start_worker("w1")
    usages = [(1000 + 37 * i, 50 + 11 * i) for i in range(30)]
    server = TestServer(fake_openai(usages))
    await server.start_server()
    instrumentor = OpenAIInstrumentor()
    try:
        async with running_gateway(settings) as gateway:
            memory = InMemorySpanExporter()
            provider = TracerProvider(resource=Resource.create({"service.name": "openai-app"}))
            provider.add_span_processor(SimpleSpanProcessor(memory))
            provider.add_span_processor(
                SimpleSpanProcessor(OTLPSpanExporter(endpoint=str(gateway.make_url("/v1/traces"))))
            )
            instrumentor.instrument(tracer_provider=provider)
            client = openai.OpenAI(base_url=str(server.make_url("/v1")), api_key="test-key")

            def call(i: int) -> None:
                client.chat.completions.create(
                    model="gpt-4o" if i % 3 else "gpt-4o-mini",
                    messages=[{"role": "user", "content": f"question {i}"}],
                )

            for i in range(len(usages)):
                await asyncio.to_thread(call, i)
            await asyncio.to_thread(provider.shutdown)
    finally:
        instrumentor.uninstrument()
        await server.close()
    spans = [
        s
        for s in memory.get_finished_spans()
        if s.attributes and "gen_ai.usage.input_tokens" in s.attributes
    ]
    assert len(spans) == len(usages)
    assert (
        spans[0].attributes is not None and spans[0].attributes["gen_ai.provider.name"] == "openai"
    )
    events = [
        span_event(
            s,
            "openai/gpt-4o"
            if s.attributes and s.attributes["gen_ai.request.model"] == "gpt-4o"
            else "openai/gpt-4o-mini",
        )
        for s in spans
    ]
    assert sorted((e.prompt_tokens, e.completion_tokens) for e in events) == sorted(usages)
    await wait_for_totals(settings, Expected.of(events), 90, [worker])


async def test_litellm_mock_completions_count_exactly(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """LiteLLM with mock responses (no network) and its own OpenTelemetry callback,
    configured as ``OTEL_EXPORTER=otlp_http`` and ``OTEL_ENDPOINT=<gateway>`` do: it exports
    OTLP/HTTP to the gateway, and every completion is counted once with the usage LiteLLM
    reports (10 prompt and 20 completion tokens per mock call)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of the price map
    import litellm
    from litellm.integrations.opentelemetry import OpenTelemetry, OpenTelemetryConfig

    await ensure_topics(settings)
    worker = start_worker("w1")
    calls = 12
    async with running_gateway(settings) as gateway:
        base_url = str(gateway.make_url("")).rstrip("/")
        config = OpenTelemetryConfig(
            exporter="otlp_http",
            endpoint=base_url,
            service_name="litellm-app",
            skip_set_global=True,
        )
        previous = litellm.callbacks
        litellm.callbacks = [OpenTelemetry(config=config)]
        try:
            for i in range(calls):
                response = await litellm.acompletion(
                    model="gpt-4o" if i % 2 else "anthropic/claude-sonnet-4-5-20250929",
                    messages=[{"role": "user", "content": f"hi {i}"}],
                    mock_response=f"hello {i}",
                )
                assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (10, 20)
            # LiteLLM's batch span processor exports within seconds, to the running gateway.
            now_ms = time.time_ns() // 1_000_000
            events = [
                UsageEvent(
                    f"litellm-{i}",
                    now_ms,
                    "openai/gpt-4o" if i % 2 else "anthropic/claude-sonnet-4.5",
                    10,
                    20,
                )
                for i in range(calls)
            ]
            await wait_for_totals(settings, Expected.of(events), 90, [worker])
        finally:
            litellm.callbacks = previous
    assert worker_metric(worker, "tokenboard_events_counted_total") == calls


@pytest.mark.parametrize("content_type", ["application/x-protobuf", "application/json"])
async def test_error_bodies_follow_the_request_encoding(
    settings: Settings, content_type: str
) -> None:
    """A 400 answers in the request's encoding: Status protobuf or Status JSON."""
    async with running_gateway(settings, wait_ready=False) as client:
        response = await client.post(
            "/v1/traces", data=b"\xff\xfe not otlp", headers={"Content-Type": content_type}
        )
        assert response.status == 400
        assert response.content_type == content_type


README = Path(__file__).resolve().parents[2] / "README.md"
README_SCRIPT = """
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
tracer = provider.get_tracer("readme")
attributes = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 321,
    "gen_ai.usage.output_tokens": 123,
}
with tracer.start_as_current_span("chat gpt-4o", attributes=attributes):
    pass
provider.shutdown()
"""


def readme_exporter_variables() -> dict[str, str]:
    """The ``export NAME=value`` lines of the README's OpenTelemetry section."""
    text = README.read_text()
    section = text[text.index("### Sending usage from OpenTelemetry and gateways") :]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None
    variables = {}
    for line in block.group(1).splitlines():
        match = re.match(r"export (\w+)=(\S+)", line)
        if match:
            variables[match.group(1)] = match.group(2)
    assert {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS"} <= set(variables)
    return variables


async def test_the_readme_exporter_variables_work_as_written(settings: Settings) -> None:
    """A program that only builds the SDK's default OTLP exporter, run with the README's
    variables (its gateway address and key replaced by the test's), lands its chat span."""
    keyed = settings.replace(api_keys="readme-key")
    await ensure_topics(keyed)
    async with running_gateway(keyed) as client:
        base = str(client.make_url("")).rstrip("/")
        variables = {
            name: value.replace("http://127.0.0.1:8081", base).replace("YOUR_KEY", "readme-key")
            for name, value in readme_exporter_variables().items()
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", README_SCRIPT],
            env={**env, **variables},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "Failed to export" not in done.stderr, done.stderr
    events = await read_usage_events(keyed)
    assert [(e.model, e.app, e.prompt_tokens, e.completion_tokens) for e in events.values()] == [
        ("openai/gpt-4o", variables["OTEL_SERVICE_NAME"], 321, 123)
    ]
