"""``POST /v1/traces`` on the ingest gateway: an OTLP/HTTP trace receiver.

An OpenTelemetry SDK's OTLP exporter, or a Collector's ``otlphttp`` exporter, whose endpoint
is the gateway's base URL sends its spans here unchanged. Each span with GenAI usage becomes
a usage event (:mod:`aggregations.otel`), produced to the usage topic keyed by its event id;
a GenAI span with bad values is dead-lettered with the reason an event would get, and
counted in the answer's ``partial_success``. Spans without GenAI usage are skipped.

Answers follow the OTLP/HTTP specification: the body is an ``ExportTraceServiceResponse``
(200) or a ``google.rpc.Status`` (errors), protobuf or JSON like the request. Nothing is
answered 200 before Kafka acknowledged every event and dead letter of the request; when it
cannot, the answer is 503 with ``Retry-After``, and the exporter's retry is safe because a
span's event id is the same every time it is sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from aiohttp import web
from aiokafka.errors import KafkaError

from aggregations.events import Limits, encode_event
from aggregations.model_names import ModelResolver
from aggregations.otel import (
    InvalidOtlp,
    SpanBatch,
    SpanMapper,
    dead_letter,
    decode_json,
    decode_protobuf,
    encode_response,
    status_body,
)
from streams import metrics
from streams.catalog import load_catalog
from streams.sdk.producer import UsageProducer
from streams.settings import Settings

__all__ = ["PROTOBUF", "OtlpReceiver", "otlp_routes"]

log = logging.getLogger("tokenboard.ingest.otlp")

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
#: ``Retry-After`` of a 503, as the gateway's other routes: about a broker failover.
UNAVAILABLE_RETRY_AFTER_S = 5
# google.rpc.Code values for the Status body of each HTTP error.
_GRPC_CODES = {400: 3, 401: 16, 413: 8, 415: 3, 429: 8, 503: 14}


class Gateway(Protocol):
    """What the receiver uses of the ingest gateway (``streams.http.ingest.IngestGateway``)."""

    settings: Settings
    connected: bool
    send_timeout_s: float

    @property
    def producer(self) -> UsageProducer:
        """The gateway's producer, once started."""
        ...

    def refuse(self, request: web.Request) -> tuple[int, str, str, dict[str, str]] | None:
        """(status, error code, detail, headers) when the client may not send now."""
        ...


class OtlpReceiver:
    """The ``/v1/traces`` handler of one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        settings = gateway.settings
        resolver = ModelResolver(load_catalog(settings.catalog_path or None))
        self.mapper = SpanMapper(resolver, Limits(max_event_bytes=settings.max_event_bytes))

    def _status(
        self, status: int, message: str, as_json: bool, headers: dict[str, str] | None = None
    ) -> web.Response:
        body = status_body(_GRPC_CODES.get(status, 2), message, as_json=as_json)
        return web.Response(
            status=status,
            body=body,
            content_type=JSON if as_json else PROTOBUF,
            headers=headers,
        )

    def _unavailable(self, message: str, as_json: bool) -> web.Response:
        retry = {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)}
        return self._status(503, message, as_json, retry)

    async def post_traces(self, request: web.Request) -> web.Response:
        """``POST /v1/traces``: an ``ExportTraceServiceRequest``, protobuf or JSON."""
        as_json = request.content_type == JSON
        refusal = self.gateway.refuse(request)
        if refusal is not None:
            status, _, detail, headers = refusal
            return self._status(status, detail, as_json, headers)
        if request.content_type not in (PROTOBUF, JSON):
            return self._status(
                415,
                f"Content-Type {request.content_type!r} is not supported: send an OTLP "
                f"ExportTraceServiceRequest as {PROTOBUF} or {JSON}",
                as_json=True,
            )
        limit = self.gateway.settings.max_request_bytes
        declared = request.content_length
        if declared is not None and declared > limit:
            return self._status(
                413, f"request body is {declared} bytes, the limit is {limit} bytes", as_json
            )
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            # Chunked, or gzip that inflates past the limit: aiohttp counts inflated bytes.
            return self._status(
                413, f"request body is above the limit of {limit} bytes (after gzip)", as_json
            )
        except web.RequestPayloadError as exc:
            return self._status(400, f"the body could not be read: {exc}", as_json)
        try:
            traces = decode_json(body) if as_json else decode_protobuf(body)
        except InvalidOtlp as exc:
            return self._status(400, str(exc), as_json)

        batch = self.mapper.map_traces(traces, now_ms=time.time_ns() // 1_000_000)
        if batch.events or batch.rejected:
            if not self.gateway.connected:
                return self._unavailable(
                    "not connected to Kafka yet; no span was accepted", as_json
                )
            try:
                await asyncio.wait_for(self._send(batch), self.gateway.send_timeout_s)
            except (TimeoutError, KafkaError) as exc:
                sent = len(batch.events) + len(batch.rejected)
                log.warning("sending %d span events failed: %r", sent, exc)
                return self._unavailable(
                    f"Kafka did not acknowledge the spans ({type(exc).__name__}); "
                    "no span was accepted, retry the request",
                    as_json,
                )
        metrics.count_spans(batch, "http", metrics.INGEST_REJECTED)
        rejected = len(batch.rejected)
        body = encode_response(rejected, batch.message() if rejected else "", as_json=as_json)
        return web.Response(status=200, body=body, content_type=JSON if as_json else PROTOBUF)

    async def _send(self, batch: SpanBatch) -> None:
        """Queue the events and dead letters, then wait until Kafka acknowledged them all."""
        producer = self.gateway.producer
        records = [(e.event_id, encode_event(e)) for e in batch.events]
        events = await producer.send_encoded(records)
        topic = self.gateway.settings.dead_letter_topic
        letters: list[asyncio.Future[Any]] = []
        for mapped in batch.rejected:
            letter = dead_letter(mapped)
            letters.append(
                await producer.send_record(
                    topic, letter.value, key=letter.key, headers=letter.headers
                )
            )
        # The events' wait replaces a producer whose sequence numbers broke; both raise the
        # first failure, and every future is awaited either way.
        outcomes = await asyncio.gather(
            producer.acknowledged(events, len(records)), *letters, return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome


def otlp_routes(gateway: Gateway) -> list[web.RouteDef]:
    """The receiver's routes for ``gateway``'s application."""
    return [web.post("/v1/traces", OtlpReceiver(gateway).post_traces)]
