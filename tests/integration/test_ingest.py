"""The HTTP ingest gateway and the producer SDK against the real broker."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from aggregations.events import UsageEvent, event_from_mapping
from streams.http.ingest import RateLimit, RateLimiter, build_ingest_app
from streams.sdk.producer import SyncUsageProducer, UsageProducer
from streams.settings import Settings
from streams.topics import ensure_topics
from tests.integration.kafka_read import read_usage_events

NOW_MS = time.time_ns() // 1_000_000
NDJSON = {"Content-Type": "application/x-ndjson"}
JSON = {"Content-Type": "application/json"}


def make_event(i: int, **overrides: object) -> dict[str, object]:
    """A valid event as a JSON object; overrides replace or add fields."""
    event: dict[str, object] = {
        "event_id": f"evt-{i}",
        "ts": NOW_MS - 60_000 - i,
        "model": "deepseek/deepseek-v4-flash",
        "prompt_tokens": 1000 + i,
        "completion_tokens": 200 + i,
    }
    event.update(overrides)
    return event


def expected(*objects: dict[str, object]) -> dict[str, UsageEvent]:
    """What the usage topic must hold for these accepted JSON objects, by event_id."""
    events = [event_from_mapping(o, now_ms=NOW_MS) for o in objects]
    return {e.event_id: e for e in events}


def free_port() -> int:
    """A local port where nothing listens (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def gateway(
    settings: Settings,
    *,
    wait_ready: bool = True,
    producer: UsageProducer | None = None,
    **options: Any,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The gateway in-process (its own real UsageProducer unless given one), once ready."""
    app = build_ingest_app(settings, producer, **options)
    async with TestClient(TestServer(app)) as client:
        deadline = time.monotonic() + 30
        while wait_ready and (await client.get("/readyz")).status != 200:
            assert time.monotonic() < deadline, "the gateway never connected to Kafka"
            await asyncio.sleep(0.1)
        yield client


async def test_single_object_is_accepted_after_kafka_acknowledged_it(settings: Settings) -> None:
    """One JSON object: 200, reported accepted, and on the usage topic keyed by its id."""
    event = make_event(1, vendor="DeepSeek", country="cn", calls=3, reasoning_tokens=50)
    async with gateway(settings, producer=UsageProducer(settings)) as client:
        response = await client.post("/v1/events", data=orjson.dumps(event), headers=JSON)
        assert response.status == 200
        assert await response.json() == {
            "accepted": 1,
            "rejected": 0,
            "results": [{"index": 0, "event_id": "evt-1", "status": "accepted"}],
        }
    assert await read_usage_events(settings) == expected(event)


async def test_array_is_accepted_and_read_back_exactly(settings: Settings) -> None:
    """A JSON array of 50 events: all accepted, in order, and exactly those 50 on the topic."""
    events = [make_event(i, ts=f"2026-11-18T12:00:{i:02d}.5Z") for i in range(50)]
    async with gateway(settings) as client:
        response = await client.post("/v1/events", data=orjson.dumps(events), headers=JSON)
        body = await response.json()
    assert response.status == 200
    assert (body["accepted"], body["rejected"]) == (50, 0)
    assert [r["event_id"] for r in body["results"]] == [f"evt-{i}" for i in range(50)]
    assert [r["index"] for r in body["results"]] == list(range(50))
    assert await read_usage_events(settings) == expected(*events)


async def test_ndjson_is_accepted_and_read_back_exactly(settings: Settings) -> None:
    """NDJSON (blank lines ignored): every line accepted and produced once."""
    events = [make_event(i) for i in range(20)]
    body = b"\n".join(orjson.dumps(e) for e in events[:10]) + b"\n\n"
    body += b"\n".join(orjson.dumps(e) for e in events[10:]) + b"\n"
    async with gateway(settings) as client:
        response = await client.post("/v1/events", data=body, headers=NDJSON)
        assert response.status == 200
        assert (await response.json())["accepted"] == 20
    assert await read_usage_events(settings) == expected(*events)


async def test_mixed_batch_reports_each_event_and_produces_only_valid_ones(
    settings: Settings,
) -> None:
    """207: each bad event rejected with its precise reason and field, good ones produced."""
    good = [make_event(i) for i in range(3)]
    bad: list[tuple[object, str, str | None]] = [
        ({k: v for k, v in make_event(10).items() if k != "model"}, "missing_field", "model"),
        (make_event(11, prompt_tokens=-5), "negative_count", "prompt_tokens"),
        (make_event(12, completion_tokens="300"), "wrong_type", "completion_tokens"),
        (make_event(13, ts=1_700_000_000), "bad_timestamp", "ts"),
        (make_event(14, ts=NOW_MS + 3 * 86_400_000), "future_timestamp", "ts"),
        (make_event(15, country="Germany"), "bad_country", "country"),
        (make_event(16, prompt_tokens=10**16), "absurd_count", "prompt_tokens"),
        ([1, 2], "not_object", None),
    ]
    items = [good[0], *(b[0] for b in bad[:4]), good[1], *(b[0] for b in bad[4:]), good[2]]
    async with gateway(settings) as client:
        response = await client.post("/v1/events", data=orjson.dumps(items), headers=JSON)
        body = await response.json()
    assert response.status == 207
    assert (body["accepted"], body["rejected"]) == (3, len(bad))
    accepted = [r for r in body["results"] if r["status"] == "accepted"]
    assert [(r["index"], r["event_id"]) for r in accepted] == [
        (0, "evt-0"),
        (5, "evt-1"),
        (10, "evt-2"),
    ]
    rejected = [r for r in body["results"] if r["status"] == "rejected"]
    assert [(r["reason"], r["field"]) for r in rejected] == [(b[1], b[2]) for b in bad]
    assert [r["index"] for r in rejected] == [1, 2, 3, 4, 6, 7, 8, 9]
    assert all(r["detail"] for r in rejected)
    assert await read_usage_events(settings) == expected(*good)


async def test_all_rejected_is_400_and_nothing_is_produced(settings: Settings) -> None:
    """Only bad events, or a body that is no JSON at all, get 400 and produce nothing."""
    async with gateway(settings) as client:
        response = await client.post(
            "/v1/events", data=orjson.dumps([make_event(1, model=None)]), headers=JSON
        )
        assert response.status == 400
        assert (await response.json())["results"][0]["reason"] == "missing_field"
        response = await client.post("/v1/events", data=b"this is not json", headers=NDJSON)
        assert response.status == 400
        body = await response.json()
        assert (body["accepted"], body["rejected"], body["results"][0]["reason"]) == (
            0,
            1,
            "bad_json",
        )
    assert await read_usage_events(settings) == {}


async def test_cloudevents_envelope_is_unwrapped(settings: Settings) -> None:
    """A structured CloudEvent is accepted with id/time filling event_id/ts; data_base64 is not."""
    data = {"model": "openai/gpt-5.1", "prompt_tokens": 800, "completion_tokens": 120}
    envelope = {
        "specversion": "1.0",
        "type": "ai.tokenboard.usage",
        "source": "/gateway/eu",
        "id": "ce-42",
        "time": "2026-11-18T09:30:00.250Z",
        "datacontenttype": "application/json",
        "data": data,
    }
    broken = {"specversion": "1.0", "id": "ce-43", "data_base64": "e30="}
    async with gateway(settings) as client:
        response = await client.post(
            "/v1/events",
            data=orjson.dumps(envelope),
            headers={"Content-Type": "application/cloudevents+json"},
        )
        assert response.status == 200
        assert (await response.json())["results"][0]["event_id"] == "ce-42"
        response = await client.post(
            "/v1/events",
            data=orjson.dumps([broken]),
            headers={"Content-Type": "application/cloudevents-batch+json"},
        )
        assert response.status == 400
        assert (await response.json())["results"][0]["reason"] == "bad_cloudevent"
    produced = await read_usage_events(settings)
    assert produced == expected({**data, "event_id": "ce-42", "ts": envelope["time"]})
    assert produced["ce-42"].ts_ms == 1_794_994_200_250


async def test_oversized_body_is_413_and_oversized_event_rejected(settings: Settings) -> None:
    """Bodies above max_request_bytes get a JSON 413 (declared or chunked); big events oversized."""
    settings = settings.replace(max_request_bytes=4096, max_event_bytes=512)
    big = orjson.dumps([make_event(i) for i in range(60)])
    assert len(big) > 4096

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    async with gateway(settings) as client:
        response = await client.post("/v1/events", data=big, headers=JSON)
        assert response.status == 413
        assert (await response.json())["error"] == "payload_too_large"
        response = await client.post("/v1/events", data=chunked(), headers=JSON)
        assert response.status == 413
        assert (await response.json())["error"] == "payload_too_large"
        fat = make_event(1, app="x" * 200, region="y" * 200)
        response = await client.post("/v1/events", data=orjson.dumps([fat]), headers=JSON)
        assert response.status == 400
        assert (await response.json())["results"][0]["reason"] == "oversized"
    assert await read_usage_events(settings) == {}


async def test_api_keys_are_required_when_configured(settings: Settings) -> None:
    """With keys set: no or wrong key is 401; either header with a right key is accepted."""
    settings = settings.replace(api_keys="first-key, second-key")
    data = orjson.dumps(make_event(1))
    async with gateway(settings) as client:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"X-API-Key": "first-key2"}):
            response = await client.post("/v1/events", data=data, headers={**JSON, **headers})
            assert response.status == 401
            assert (await response.json())["error"] == "unauthorized"
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        keys = [{"Authorization": "Bearer second-key"}, {"X-API-Key": "first-key"}]
        for i, headers in enumerate(keys, start=2):
            response = await client.post(
                "/v1/events", data=orjson.dumps(make_event(i)), headers={**JSON, **headers}
            )
            assert response.status == 200
    assert sorted(await read_usage_events(settings)) == ["evt-2", "evt-3"]


async def test_rate_limit_answers_429_with_retry_after(settings: Settings) -> None:
    """A client past its burst gets 429 and a Retry-After; its requests were not counted."""
    async with gateway(settings, rate_limit=RateLimit(rate=0.01, burst=2)) as client:
        statuses = []
        for i in range(3):
            response = await client.post(
                "/v1/events", data=orjson.dumps(make_event(i)), headers=JSON
            )
            statuses.append(response.status)
        assert statuses == [200, 200, 429]
        assert int(response.headers["Retry-After"]) >= 1
        assert (await response.json())["error"] == "rate_limited"
    assert sorted(await read_usage_events(settings)) == ["evt-0", "evt-1"]


def test_rate_limiter_refills_at_its_rate() -> None:
    """Buckets refill at `rate`, cap at `burst`, and clients are limited separately."""
    now = [0.0]
    limiter = RateLimiter(RateLimit(rate=2.0, burst=3), clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == 0.5
    assert limiter.acquire("b") == 0.0
    now[0] = 0.5
    assert limiter.acquire("a") == 0.0
    now[0] = 100.0
    assert [limiter.acquire("a") for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]


async def test_kafka_unreachable_is_503_and_nothing_accepted(settings: Settings) -> None:
    """Nothing listening at the bootstrap address: the gateway starts, is not ready, says 503."""
    down = settings.replace(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    async with gateway(down, wait_ready=False) as client:
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/readyz")).status == 503
        response = await client.post(
            "/v1/events", data=orjson.dumps([make_event(1), make_event(2)]), headers=JSON
        )
        assert response.status == 503
        assert int(response.headers["Retry-After"]) >= 1
        body = await response.json()
        assert (body["error"], body["accepted"]) == ("kafka_unavailable", 0)
        assert "results" not in body
        # Nothing to send, nothing lost: an all-invalid batch is still answered in full.
        response = await client.post("/v1/events", data=b"[42]", headers=JSON)
        assert response.status == 400


async def test_unacknowledged_send_is_503_after_the_send_timeout(settings: Settings) -> None:
    """Connected, but Kafka never acknowledges (a topic name it refuses): 503, none accepted."""
    refused = settings.replace(topic_prefix=settings.topic_prefix + "!refused")
    async with gateway(refused, send_timeout_s=1.0) as client:
        response = await client.post(
            "/v1/events", data=orjson.dumps([make_event(1), {"event_id": 2}]), headers=JSON
        )
        assert response.status == 503
        assert int(response.headers["Retry-After"]) >= 1
        body = await response.json()
        assert (body["error"], body["accepted"]) == ("kafka_unavailable", 0)


async def test_unsupported_content_type_is_415(settings: Settings) -> None:
    """A form-encoded body (curl's default) is refused with 415."""
    async with gateway(settings) as client:
        response = await client.post(
            "/v1/events",
            data=orjson.dumps(make_event(1)),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status == 415
        assert (await response.json())["error"] == "unsupported_media_type"


async def test_openapi_document_and_metrics(settings: Settings) -> None:
    """/openapi.json is an OpenAPI 3.1 document of /v1/events; /metrics counts requests."""
    async with gateway(settings) as client:
        response = await client.get("/openapi.json")
        assert response.status == 200
        document = orjson.loads(await response.read())
        await client.post("/v1/events", data=orjson.dumps(make_event(1)), headers=JSON)
        await client.post("/v1/events", data=b'{"event_id": "x"}', headers=JSON)
        metrics_text = await (await client.get("/metrics")).text()
    assert document["openapi"].startswith("3.1")
    assert {"/v1/events", "/healthz", "/readyz", "/metrics"} <= set(document["paths"])
    post = document["paths"]["/v1/events"]["post"]
    assert {"application/json", "application/x-ndjson"} <= set(post["requestBody"]["content"])
    assert {"200", "207", "400", "401", "413", "429", "503"} <= set(post["responses"])
    schemas = document["components"]["schemas"]
    assert "negative_count" in schemas["EventResult"]["oneOf"][1]["properties"]["reason"]["enum"]
    assert set(schemas["UsageEvent"]["required"]) == {
        "event_id", "ts", "model", "prompt_tokens", "completion_tokens",
    }  # fmt: skip
    assert (
        'tokenboard_http_requests_total{route="/v1/events",service="ingest",status="200"}'
        in metrics_text
    )
    assert 'tokenboard_ingest_rejected_total{reason="missing_field"}' in metrics_text


async def test_sdk_async_and_sync_producers_round_trip(settings: Settings) -> None:
    """UsageProducer.send_many and SyncUsageProducer put exactly the given events on the topic."""
    await ensure_topics(settings)
    batch = [UsageEvent(f"sdk-{i}", NOW_MS - i, "openai/gpt-5.1", 100 + i, 10) for i in range(200)]
    single = UsageEvent(
        "sdk-sync-1", NOW_MS, "qwen/qwen3-max", 5000, 700,
        reasoning_tokens=300, cached_tokens=1000, calls=2, vendor="Qwen", country="CN",
        app="chat", region="eu-west-1",
    )  # fmt: skip
    async with UsageProducer(settings) as producer:
        assert await producer.send_many(batch) == 200

    def send_sync() -> int:
        with SyncUsageProducer(settings) as producer:
            producer.send(single)
            return producer.send_many(UsageEvent(f"sync-{i}", NOW_MS, "m", 1, 1) for i in range(5))

    assert await asyncio.to_thread(send_sync) == 5
    sync_batch = [UsageEvent(f"sync-{i}", NOW_MS, "m", 1, 1) for i in range(5)]
    want = {e.event_id: e for e in [*batch, single, *sync_batch]}
    assert await read_usage_events(settings) == want
