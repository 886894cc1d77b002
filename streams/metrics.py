"""Prometheus metrics of every tokenboard process (served on ``/metrics``)."""

from __future__ import annotations

from typing import Literal

from prometheus_client import Counter, Gauge, Histogram

from aggregations.events import InvalidEvent
from aggregations.otel import SpanBatch

EVENTS_CONSUMED = Counter(
    "tokenboard_events_consumed_total", "Usage events read by the pre-aggregator"
)
EVENTS_COUNTED = Counter("tokenboard_events_counted_total", "Usage events folded into totals")
TOKENS_COUNTED = Counter("tokenboard_tokens_counted_total", "Tokens folded into totals")
DEAD_LETTERED = Counter(
    "tokenboard_events_dead_lettered_total",
    "Invalid events sent to the dead-letter topic",
    ["reason"],
)
JOB_ERRORS = Counter(
    "tokenboard_job_errors_total",
    "Unexpected errors of a worker's periodic jobs (logged with a traceback; the worker goes on)",
    ["job"],
)
REROUTED = Counter(
    "tokenboard_events_rerouted_total",
    "Events not keyed by their id, sent on to their id's usage partition to be counted there",
)
DUPLICATES = Counter("tokenboard_duplicates_dropped_total", "Events dropped as duplicates")
LATE_EVENTS = Counter("tokenboard_late_events_total", "Events counted after their week closed")
PARTIALS_PRODUCED = Counter("tokenboard_partials_produced_total", "Partial-sum records produced")
PARTIALS_APPLIED = Counter("tokenboard_partials_applied_total", "Partial sums folded into tables")
PARTIALS_REPLAYED = Counter(
    "tokenboard_partials_replayed_total", "Partial sums ignored because already applied"
)
PARTIALS_REPAIRED = Counter(
    "tokenboard_partials_repaired_total",
    "Partials records Faust dropped before the fold, read from the topic and folded",
)
TAIL_PROBES = Counter(
    "tokenboard_tail_probes_total",
    "Tail probes sent to partials partitions whose end stayed ahead of the fold",
)
CONSUMER_LAG = Gauge(
    "tokenboard_consumer_lag", "Usage events not yet read, per partition", ["partition"]
)
PROCESSING_LATENCY = Histogram(
    "tokenboard_processing_latency_seconds",
    "From a usage record's Kafka timestamp to its partial sum being acknowledged",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
SNAPSHOT_AGE = Gauge(
    "tokenboard_snapshot_age_seconds",
    "Seconds since this worker last wrote to Redis (since it started, before its first write)",
)
SNAPSHOT_KEYS = Counter("tokenboard_snapshot_keys_written_total", "Table keys written to Redis")
REDIS_LATENCY = Histogram(
    "tokenboard_redis_latency_seconds",
    "From the event time of the newest event in an incremental snapshot write to the end of"
    " that write in Redis: produce to Redis for live producers, which stamp an event as they"
    " send it (a replay of history shows the age of what it replays)",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
RANKER_TICKS = Counter(
    "tokenboard_ranker_ticks_total",
    "The leader's rank ticks by outcome: ranked (a pass ran), waiting (for the ranker's state"
    " or the snapshots after a Redis loss), state_lost (Redis lost its state during the pass),"
    " failed (an exception: Redis or Kafka unavailable, or unexpected, which"
    " tokenboard_job_errors_total counts too)",
    ["outcome"],
)
RANKER_TICK_SECONDS = Histogram(
    "tokenboard_ranker_tick_seconds",
    "Duration of the leader's rank ticks, whatever their outcome",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WORKER_READY = Gauge(
    "tokenboard_worker_ready",
    "1 from when this worker's /readyz answers ready until it shuts down, else 0 (always 0"
    " in ingest and api processes)",
)
EVENTS_PRODUCED = Counter("tokenboard_events_produced_total", "Events produced", ["topic"])
INGEST_REJECTED = Counter(
    "tokenboard_ingest_rejected_total", "Events the HTTP gateway refused", ["reason"]
)
HTTP_REQUESTS = Counter(
    "tokenboard_http_requests_total", "HTTP requests served", ["service", "route", "status"]
)
OTLP_SPANS = Counter(
    "tokenboard_otlp_spans_total",
    "OpenTelemetry spans received, by way in (http, kafka) and outcome: accepted (a usage"
    " event), rejected (GenAI usage with bad values, dead-lettered), skipped (no GenAI usage)",
    ["source", "outcome"],
)


def count_spans(batch: SpanBatch, source: Literal["http", "kafka"], reasons: Counter) -> None:
    """Count a mapped span batch once it is acknowledged: :data:`OTLP_SPANS` by outcome,
    and each rejected span's reason on ``reasons`` (the gateway's or the dead-letter count)."""
    if batch.events:
        OTLP_SPANS.labels(source, "accepted").inc(len(batch.events))
    if batch.rejected:
        OTLP_SPANS.labels(source, "rejected").inc(len(batch.rejected))
        for mapped in batch.rejected:
            if isinstance(mapped.outcome, InvalidEvent):
                reasons.labels(mapped.outcome.reason).inc()
    if batch.skipped:
        OTLP_SPANS.labels(source, "skipped").inc(batch.skipped)


NOTIFY_DELIVERED = Counter(
    "tokenboard_notify_delivered_total",
    "Ranking changes and alerts delivered by tokenboard notify (a 2xx answer), per target",
    ["target"],
)
NOTIFY_FAILED = Counter(
    "tokenboard_notify_failed_total",
    "Failed delivery attempts of tokenboard notify (refused, timed out, non-2xx), per target",
    ["target"],
)
NOTIFY_DEAD_LETTERED = Counter(
    "tokenboard_notify_dead_lettered_total",
    "Ranking changes and alerts tokenboard notify gave up on and sent to notify.dead-letter",
    ["target"],
)
