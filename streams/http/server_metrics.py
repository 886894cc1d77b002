"""Prometheus metrics of the HTTP servers' protection and of the read API's cache and live feed.

Kept next to the servers rather than in :mod:`streams.metrics`: only ``tokenboard api`` and
``tokenboard ingest`` (and the workers' health port, for the connection gauges) export them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CONNECTIONS_OPEN = Gauge(
    "tokenboard_http_connections", "HTTP connections open in this process", ["service"]
)
CONNECTIONS_REFUSED = Counter(
    "tokenboard_http_connections_refused_total",
    "Connections answered 503 and closed because the process held its maximum",
    ["service"],
)
CONNECTIONS_CUT = Counter(
    "tokenboard_http_connections_cut_total",
    "Connections closed because a request head or body arrived too slowly",
    ["service", "reason"],
)
CACHE_ANSWERS = Counter(
    "tokenboard_api_cache_answers_total",
    "Read API answers by how they were made: hit (from memory), miss (computed), "
    "not_modified (304)",
    ["result"],
)
CACHE_VERSION_READS = Counter(
    "tokenboard_api_cache_version_reads_total", "Reads of the snapshot version from Redis"
)
STREAM_CLIENTS = Gauge("tokenboard_api_stream_clients", "Live-feed (SSE) clients connected")
STREAM_DROPPED = Counter(
    "tokenboard_api_stream_clients_dropped_total",
    "Live-feed clients dropped because they fell more than the queue behind",
)
STREAM_REFUSED = Counter(
    "tokenboard_api_stream_clients_refused_total",
    "Live-feed clients answered 503 because the process held TOKENBOARD_API_MAX_STREAMS",
)
STREAM_EVENTS = Counter(
    "tokenboard_api_stream_events_total", "Events the process's one tail read and fanned out"
)
