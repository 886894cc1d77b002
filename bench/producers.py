"""The producer side: what the SDK, the ingest gateway and its OTLP receiver take per second.

The rows, each against the real broker of the stack the benchmark runs on:

- the SDK: one process, ``UsageProducer.send_many`` in batches of 10,000 events, every send
  acknowledged (acks=all, idempotent) before the clock stops;
- the gateway: a ``tokenboard ingest`` process, ``CLIENTS`` concurrent clients POSTing JSON
  arrays of 1,000 events; a response is only 200/207 once Kafka acknowledged the events;
- OTLP: the same gateway's ``POST /v1/traces`` with protobuf ``ExportTraceServiceRequest``
  bodies of 1,000 GenAI spans;
- both again with ``tokenboard ingest --workers 2``: two processes on one port
  (SO_REUSEPORT), the same clients and bodies. The kernel hands each of the ``CLIENTS``
  keep-alive connections to one process, so the split can be uneven: each row's note gives
  the CPU seconds of every gateway process during the row.

Run alone: ``python -m bench.producers [--events N]`` (stack environment as for bench.run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson

from aggregations.events import UsageEvent, encode_event
from bench.procstats import cpu_seconds
from bench.progress import say
from streams.sdk.producer import UsageProducer
from streams.settings import Settings
from streams.topics import delete_topics_with_prefix, ensure_topics

#: Concurrent HTTP clients of the gateway rows.
CLIENTS = 8
#: Events (or spans) per HTTP request, and per SDK ``send_many`` call.
BODY_EVENTS = 1000
SDK_BATCH = 10_000
MODELS = ("deepseek/deepseek-v4-flash", "openai/gpt-5.1", "qwen/qwen3-max", "google/gemini-3-pro")


@dataclass
class ProducerRow:
    """One producer-side figure."""

    path: str
    events: int
    seconds: float
    note: str = ""

    @property
    def per_s(self) -> float:
        """Events (spans) acknowledged per second."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


def _events(tag: str, start: int, count: int, now_ms: int) -> list[UsageEvent]:
    return [
        UsageEvent(
            event_id=f"{tag}-{i}",
            ts_ms=now_ms - (i % 3_600_000),
            model=MODELS[i % len(MODELS)],
            prompt_tokens=1000 + i % 997,
            completion_tokens=100 + i % 89,
        )
        for i in range(start, start + count)
    ]


async def sdk_row(settings: Settings, events: int) -> ProducerRow:
    """``send_many`` from one process until ``events`` are acknowledged."""
    now_ms = int(time.time() * 1000)
    batches = [
        _events("sdk", i, min(SDK_BATCH, events - i), now_ms) for i in range(0, events, SDK_BATCH)
    ]
    async with UsageProducer(settings) as producer:
        started = time.perf_counter()
        sent = 0
        for batch in batches:
            sent += await producer.send_many(batch)
        seconds = time.perf_counter() - started
    return ProducerRow("SDK `send_many`, one process", sent, seconds, f"batches of {SDK_BATCH:,}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _wait_ready(base: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{base}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(f"gateway at {base} not ready after {timeout_s:.0f} s")


async def _post_all(base: str, path: str, bodies: list[bytes], content_type: str) -> int:
    """POST every body with ``CLIENTS`` concurrent clients; how many were answered OK."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    ok = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        while not queue.empty():
            body = queue.get_nowait()
            async with session.post(
                f"{base}{path}", data=body, headers={"Content-Type": content_type}
            ) as response:
                await response.read()
                if response.status in (200, 207):
                    ok += 1

    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(CLIENTS)))
    return ok


def _span_bodies(count: int, now_ns: int) -> list[bytes]:
    """Protobuf export requests of ``BODY_EVENTS`` GenAI spans each."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    def attribute(key: str, value: str | int) -> KeyValue:
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        return KeyValue(key=key, value=AnyValue(string_value=value))

    bodies = []
    for first in range(0, count, BODY_EVENTS):
        request = ExportTraceServiceRequest()
        scope = request.resource_spans.add()
        scope.resource.attributes.append(attribute("service.name", "bench"))
        spans = scope.scope_spans.add()
        for i in range(first, min(count, first + BODY_EVENTS)):
            span = Span(
                trace_id=i.to_bytes(16, "big"),
                span_id=(i + 1).to_bytes(8, "big"),
                name="chat",
                start_time_unix_nano=now_ns - 2_000_000,
                end_time_unix_nano=now_ns - 1_000_000,
            )
            span.attributes.extend(
                [
                    attribute("gen_ai.request.model", MODELS[i % len(MODELS)]),
                    attribute("gen_ai.provider.name", "openai"),
                    attribute("gen_ai.usage.input_tokens", 1000 + i % 997),
                    attribute("gen_ai.usage.output_tokens", 100 + i % 89),
                ]
            )
            spans.spans.append(span)
        bodies.append(request.SerializeToString())
    return bodies


def _connected(log: Path, processes: int) -> bool:
    """Whether ``processes`` gateway processes logged their connection to Kafka."""
    try:
        return log.read_text(errors="replace").count("connected to Kafka at") >= processes
    except OSError:
        return False


def _gateway_pids(log: Path, child: subprocess.Popen[bytes], workers: int) -> list[int]:
    """The processes serving: the child itself, or the ones its ``--workers`` banner names."""
    if workers == 1:
        return [child.pid]
    for line in log.read_text(errors="replace").splitlines():
        if " processes on one port (SO_REUSEPORT), pids " in line:
            return [int(p) for p in line.rsplit("pids ", 1)[1].split()]
    raise RuntimeError(f"no banner with the pids in {log}")


async def gateway_rows(
    settings: Settings, events: int, log_dir: Path, workers: int = 1
) -> list[ProducerRow]:
    """The gateway's ``/v1/events`` and ``/v1/traces`` rows, on a ``tokenboard ingest`` child
    (``--workers``: that many processes on its port)."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "TOKENBOARD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "TOKENBOARD_REDIS_URL": settings.redis_url,
        "TOKENBOARD_TOPIC_PREFIX": settings.topic_prefix,
        "TOKENBOARD_REDIS_PREFIX": settings.redis_prefix,
    }
    tokenboard = str(Path(sys.executable).with_name("tokenboard"))
    log_path = log_dir / f"ingest-{workers}.log"
    argv = [tokenboard, "ingest", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        child = subprocess.Popen(
            [*argv, "--workers", str(workers)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    processes = "one process" if workers == 1 else f"{workers} processes (`--workers {workers}`)"
    suffix = "" if workers == 1 else f", {processes}"
    try:
        await _wait_ready(base)
        # /readyz answers for the one process that took the connection: wait for them all,
        # or the first requests of a process still connecting would be 503s.
        deadline = time.monotonic() + 60
        while not _connected(log_path, workers):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{processes} of the gateway not connected to Kafka")
            await asyncio.sleep(0.2)
        pids = _gateway_pids(log_path, child, workers)
        now_ms = int(time.time() * 1000)
        bodies = [
            b"[" + b",".join(encode_event(e) for e in _events("gw", i, BODY_EVENTS, now_ms)) + b"]"
            for i in range(0, events, BODY_EVENTS)
        ]
        start = _cpu(pids)
        started = time.perf_counter()
        ok = await _post_all(base, "/v1/events", bodies, "application/json")
        events_row = ProducerRow(
            f"gateway `POST /v1/events`, JSON arrays{suffix}",
            ok * BODY_EVENTS,
            time.perf_counter() - started,
            f"{BODY_EVENTS:,} events per body, {CLIENTS} clients, {len(bodies) - ok} not OK; "
            f"gateway CPU s {_cpu_since(pids, start)}",
        )
        span_bodies = _span_bodies(events, time.time_ns())
        start = _cpu(pids)
        started = time.perf_counter()
        ok = await _post_all(base, "/v1/traces", span_bodies, "application/x-protobuf")
        spans_row = ProducerRow(
            f"gateway `POST /v1/traces`, OTLP protobuf{suffix}",
            ok * BODY_EVENTS,
            time.perf_counter() - started,
            f"{BODY_EVENTS:,} GenAI spans per body, {CLIENTS} clients, "
            f"{len(span_bodies) - ok} not OK; gateway CPU s {_cpu_since(pids, start)}",
        )
        return [events_row, spans_row]
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()


def _cpu(pids: list[int]) -> list[float]:
    return [cpu_seconds(pid) for pid in pids]


def _cpu_since(pids: list[int], start: list[float]) -> str:
    """CPU seconds of each process since ``start``, e.g. ``5.1`` or ``2.9 + 2.4``."""
    return " + ".join(f"{now - then:.1f}" for then, now in zip(start, _cpu(pids), strict=True))


async def run_producers(base: Settings, *, run_id: str, events: int) -> list[ProducerRow]:
    """All producer-side rows, on topics of their own (deleted afterwards)."""
    settings = base.replace(topic_prefix=run_id, redis_prefix=run_id, app_id=run_id)
    await ensure_topics(settings)
    try:
        rows = [await sdk_row(settings, events)]
        logs = Path("bench/data/logs") / run_id
        one = await gateway_rows(settings, events, logs)
        two = await gateway_rows(settings, events, logs, workers=2)
        # Each path's one-process row next to its two-process row.
        rows += [one[0], two[0], one[1], two[1]]
        for row in rows:
            figures = f"{row.per_s:,.0f}/s ({row.events:,} in {row.seconds:.1f} s)"
            say(f"  producers: {row.path}: {figures}")
        return rows
    finally:
        await delete_topics_with_prefix(settings, run_id)


def main() -> None:
    """``python -m bench.producers``: print the rows as a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    run_id = f"benchprod{int(time.time())}"
    rows = asyncio.run(run_producers(Settings.from_env(), run_id=run_id, events=args.events))
    print("| path | events | seconds | per second | note |\n| --- | ---: | ---: | ---: | --- |")
    for row in rows:
        print(
            f"| {row.path} | {row.events:,} | {row.seconds:.1f} | {row.per_s:,.0f} | {row.note} |"
        )
    print(orjson.dumps([row.__dict__ for row in rows]).decode(), file=sys.stderr)


if __name__ == "__main__":
    main()
