"""A Collector-format topic of OTLP spans (``ExportTraceServiceRequest`` protobuf records, as
the OpenTelemetry Collector's Kafka exporter writes them with ``encoding: otlp_proto``) read
by the workers' span bridge: exact totals, the same dedup as OTLP/HTTP, dead letters."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from aggregations.events import UsageEvent
from aggregations.otel import event_id_of
from streams.settings import Settings
from streams.topics import ensure_topics
from tests.integration.kafka_read import read_topic
from tests.integration.private_stack import (
    Expected,
    running_gateway,
    wait_for_totals,
    wait_until,
    worker_metric,
)
from tests.integration.processes import WorkerProcess
from tests.otlp_spans import SpanSpec, genai_attributes, request

MODELS = [
    ("gpt-4o-2024-08-06", "openai/gpt-4o"),
    ("claude-sonnet-4-5@20250929", "anthropic/claude-sonnet-4.5"),
    ("deepseek-r1-0528", "deepseek/deepseek-r1-0528"),
    ("acme-llm-7", "acme-llm-7"),
]


def collector_records(
    count: int, per_record: int, end_ns: int
) -> tuple[list[ExportTraceServiceRequest], list[UsageEvent]]:
    """``count`` export requests of ``per_record`` GenAI spans and one HTTP span each."""
    requests: list[ExportTraceServiceRequest] = []
    events: list[UsageEvent] = []
    for r in range(count):
        trace = os.urandom(16)
        specs: list[SpanSpec] = []
        for j in range(per_record):
            i = r * per_record + j
            name, counted_as = MODELS[i % len(MODELS)]
            span_id = (i + 1).to_bytes(8, "big")
            end = end_ns + i * 1000
            prompt, completion = 2000 + i, 150 + i % 23
            specs.append(SpanSpec(trace, span_id, end, genai_attributes(name, prompt, completion)))
            events.append(
                UsageEvent(
                    event_id_of(trace, span_id), end // 1_000_000, counted_as, prompt, completion
                )
            )
        specs.append(SpanSpec(trace, b"\xee" * 8, end_ns, {"http.route": "/chat"}, name="POST"))
        requests.append(request(specs, f"svc-{r % 3}", resources=1 + r % 2))
    return requests, events


async def partition_count(settings: Settings, name: str) -> int:
    """How many partitions the broker gave a topic."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        (described,) = await admin.describe_topics([name])
    finally:
        await admin.close()
    return len(described["partitions"])


async def produce(settings: Settings, topic: str, values: list[bytes]) -> None:
    """Unkeyed records, as the Collector's Kafka exporter sends by default."""
    producer = AIOKafkaProducer(**settings.kafka_client_options(), acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send(topic, value)
        await producer.flush()
    finally:
        await producer.stop()


async def test_collector_topic_counts_exactly_with_the_same_dedup(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """80 Collector records (400 GenAI spans, 80 HTTP spans), 10 of them written twice (a
    Collector retry), a record with two bad spans and an undecodable record; then the same
    spans of 5 records sent over OTLP/HTTP too. Every GenAI span counted once; the bad spans
    and the undecodable record dead-lettered with their reasons. A worker killed midway and
    restarted changes nothing."""
    spans_topic = f"{settings.topic_prefix}.otlp.spans"
    s = settings.replace(otlp_spans_topic=spans_topic)
    # Created with tokenboard's topics, with its partition count (not the broker default).
    assert spans_topic in await ensure_topics(s)

    async def created() -> int | None:
        return await partition_count(s, spans_topic) or None

    assert await wait_until(created, timeout_s=30, what="the spans topic") == s.partitions
    end_ns = time.time_ns() - 120 * 1_000_000_000
    requests, events = collector_records(80, 5, end_ns)
    trace = os.urandom(16)
    bad = request(
        [
            SpanSpec(trace, b"\x01" * 8, end_ns, genai_attributes(input_tokens=-1)),
            SpanSpec(trace, b"\x02" * 8, end_ns, genai_attributes(output_tokens=10**16)),
            SpanSpec(trace, b"\x03" * 8, end_ns, genai_attributes(input_tokens=7, output_tokens=3)),
        ]
    )
    events.append(
        UsageEvent(event_id_of(trace, b"\x03" * 8), end_ns // 1_000_000, "openai/gpt-4o", 7, 3)
    )
    first = [r.SerializeToString() for r in requests[:40]]
    await produce(
        s, spans_topic, [*first, *first[:10], bad.SerializeToString(), b"\x0a\xff garbage"]
    )

    worker = start_worker("w1", otlp_spans_topic=spans_topic)

    async def some_counted() -> bool:
        return worker_metric(worker, "tokenboard_events_counted_total") >= 50

    await wait_until(some_counted, timeout_s=90, what="the bridge's first events counted")
    worker.kill()  # SIGKILL: offsets of what was produced may not be committed yet
    await produce(s, spans_topic, [r.SerializeToString() for r in requests[40:]])
    worker = start_worker("w2", otlp_spans_topic=spans_topic)
    expected = Expected.of(events)
    assert expected.events == 401
    await wait_for_totals(s, expected, 120, [worker])

    # The same spans through the gateway: duplicates by event id, whichever way they came.
    async with running_gateway(s) as client:
        for req in requests[:5]:
            response = await client.post(
                "/v1/traces",
                data=req.SerializeToString(),
                headers={"Content-Type": "application/x-protobuf"},
            )
            assert response.status == 200

    async def http_copies_dropped() -> bool:
        return worker_metric(worker, "tokenboard_duplicates_dropped_total") >= 25

    await wait_until(http_copies_dropped, timeout_s=60, what="the HTTP copies dropped")
    await wait_for_totals(s, expected, 10, [worker])

    async def dead_letters() -> dict[str, str] | None:
        records = await read_topic(s, s.dead_letter_topic)
        got = {
            dict(r.headers)["source"].decode(): dict(r.headers)["reason"].decode() for r in records
        }
        return got if len(got) >= 3 else None

    letters = await wait_until(dead_letters, timeout_s=30, what="three dead letters")
    undecodable = [source for source, reason in letters.items() if reason == "bad_otlp"]
    assert len(undecodable) == 1 and undecodable[0].startswith(f"{spans_topic}/")
    negative, absurd = (f"otlp/{trace.hex()}/{b.hex()}" for b in (b"\x01" * 8, b"\x02" * 8))
    assert {source: reason for source, reason in letters.items() if reason != "bad_otlp"} == {
        negative: "negative_count",
        absurd: "absurd_count",
    }
