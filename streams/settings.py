"""One frozen settings object, read once from ``TOKENBOARD_*`` environment variables.

Everything in ``streams/`` receives a :class:`Settings`; nothing else reads the environment.
CLI flags override single fields through :meth:`Settings.replace`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aggregations.errors import InvalidInput

ENV_PREFIX = "TOKENBOARD_"
PORT_MAX = 65535
#: Inclusive bounds of the numeric settings (None: unbounded on that side). A process with a
#: value outside them stops at start with one line naming the variable, instead of failing
#: later and obscurely (0 partitions, a negative block size, a port past 65535).
BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "partitions": (1, None),
    "replication": (1, None),
    "standby_replicas": (0, None),
    "top_n": (1, None),
    "grace_seconds": (0, None),
    "idle_close_seconds": (0, None),
    "dedup_horizon_seconds": (0, None),
    "retention_weeks": (1, None),
    "retention_check_seconds": (0, None),
    "surge_pct": (1e-9, None),
    "flush_interval_ms": (1, None),
    "block_size": (1, None),
    "snapshot_interval_ms": (1, None),
    "ingest_port": (0, PORT_MAX),
    "api_port": (0, PORT_MAX),
    "worker_web_port": (None, PORT_MAX),
    "max_request_bytes": (1, None),
    "max_event_bytes": (1, None),
    "http_header_timeout_s": (0.001, None),
    "http_body_timeout_s": (0.001, None),
    "http_keepalive_timeout_s": (0, None),
    "http_keepalive_requests": (1, None),
    "http_max_connections": (1, None),
    "ingest_allow_anonymous": (0, 1),
    "ingest_workers": (1, 64),
    "api_workers": (1, 64),
    "api_cache_check_ms": (0, None),
    "api_cache_max_age_ms": (1, None),
    "api_max_streams": (0, None),
    "api_stream_queue": (1, None),
    "kafka_port": (1, PORT_MAX),
    "kafka_controller_port": (1, PORT_MAX),
    "redis_port": (1, PORT_MAX),
}
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def _env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


@dataclass(frozen=True, slots=True)
class Settings:
    """All configuration of a tokenboard process.

    Each field is read from ``TOKENBOARD_<FIELD_NAME_IN_CAPS>``; the README lists them.
    """

    # Connections
    kafka_bootstrap: str = "127.0.0.1:9092"
    # May carry a password (redis://user:secret@host): kept out of repr and tracebacks.
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    # Kafka client security (SASL/TLS); empty means PLAINTEXT.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = field(default="", repr=False)
    kafka_ssl_cafile: str = ""

    # Names
    topic_prefix: str = "tokenboard"
    redis_prefix: str = "tb"
    app_id: str = "tokenboard"
    # A topic of OTLP spans (the OpenTelemetry Collector's Kafka exporter, encoding
    # otlp_proto) that every worker also reads; empty: none. Not a prefixed name: the
    # Collector's topic is named by its own config (its default is "otlp_spans").
    otlp_spans_topic: str = ""

    # Stream core
    partitions: int = 8
    replication: int = 1
    # Faust standby replicas of the tables: how many other workers also read each changelog
    # partition. With the in-memory store they do not shorten a takeover (RELIABILITY.md,
    # "Table recovery time").
    standby_replicas: int = 0
    top_n: int = 10
    grace_seconds: int = 3600
    idle_close_seconds: int = 300
    dedup_horizon_seconds: int = 86400
    retention_weeks: int = 26
    retention_check_seconds: int = 60
    surge_pct: float = 50.0
    flush_interval_ms: int = 500
    block_size: int = 20000
    snapshot_interval_ms: int = 500
    catalog_path: str = ""
    # Price catalog overrides (aggregations/prices.py): a JSON file of the shipped
    # aggregations/data/prices.json's shape whose models it names it prices alone. Empty: none.
    prices_path: str = ""

    # Servers
    ingest_port: int = 8081
    api_port: int = 8080
    # 0: any free port; negative: no health server. See worker_port_file.
    worker_web_port: int = 6066
    # When set, the worker writes the port its health server bound to this file.
    worker_port_file: str = ""
    api_keys: str = field(default="", repr=False)
    max_request_bytes: int = 8 * 1024 * 1024
    max_event_bytes: int = 64 * 1024

    # HTTP servers (``tokenboard api`` and ``tokenboard ingest``; streams/http/web.py)
    # A request line and headers must arrive within this many seconds of their first byte (or
    # of the connection's opening): a client trickling header lines is cut.
    http_header_timeout_s: float = 10.0
    # A request body must arrive within this many seconds of its headers.
    http_body_timeout_s: float = 30.0
    # An idle keep-alive connection is closed after this many seconds (0: after each request).
    http_keepalive_timeout_s: float = 15.0
    # A keep-alive connection is closed after this many requests.
    http_keepalive_requests: int = 1000
    # Connections open at once per process; one more is answered 503 and closed.
    http_max_connections: int = 12000
    # 1: the ingest gateway may listen on a non-loopback address without TOKENBOARD_API_KEYS.
    ingest_allow_anonymous: int = 0
    # Ingest gateway processes sharing the port (SO_REUSEPORT); ``--workers`` overrides it.
    ingest_workers: int = 1

    # Read API (``tokenboard api``; streams/http/read_cache.py, streams/http/fanout.py)
    # Processes sharing the port (SO_REUSEPORT); ``--workers`` overrides it.
    api_workers: int = 1
    # How often (at most) the snapshot version is read from Redis; 0: on every request.
    api_cache_check_ms: int = 100
    # A cached answer is recomputed after this long even when the version did not change.
    api_cache_max_age_ms: int = 1000
    # Live-feed (SSE) clients at once per process; one more gets 503 with Retry-After.
    api_max_streams: int = 10000
    # Events queued for one SSE client; a client that falls further behind is dropped.
    api_stream_queue: int = 256

    # Alert delivery (``tokenboard notify``; streams/notify/): the TOML or JSON file naming
    # the webhook and Slack targets; ``--config`` overrides it. Empty: none.
    notify_config: str = ""

    # Local stack (``tokenboard stack``)
    run_dir: str = ".run"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    redis_port: int = 6379
    kafka_version: str = "3.9.2"
    kafka_heap: str = "768m"

    def __post_init__(self) -> None:
        for name, (low, high) in BOUNDS.items():
            value = getattr(self, name)
            if (low is not None and value < low) or (high is not None and value > high):
                raise InvalidInput(
                    f"{_env_name(name)}={value} is out of range: {_range(low, high)}"
                )
        if self.kafka_security_protocol not in SECURITY_PROTOCOLS:
            raise InvalidInput(
                f"{_env_name('kafka_security_protocol')}={self.kafka_security_protocol!r} "
                f"is not one of {', '.join(SECURITY_PROTOCOLS)}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``TOKENBOARD_*`` variables, defaults for the rest."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(_env_name(f.name))
            if raw is None or raw == "":
                continue
            values[f.name] = _coerce(f, raw)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """Copy with some fields changed; ``None`` values are ignored (unset CLI flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_env(self) -> dict[str, str]:
        """The ``TOKENBOARD_*`` variables that reproduce these settings in a child process."""
        return {_env_name(f.name): str(getattr(self, f.name)) for f in dataclasses.fields(self)}

    # Derived names -------------------------------------------------------------------
    def topic(self, name: str) -> str:
        """Full topic name, e.g. ``topic("usage")`` -> ``tokenboard.usage``."""
        return f"{self.topic_prefix}.{name}"

    @property
    def usage_topic(self) -> str:
        """Raw usage events, keyed by event id."""
        return self.topic("usage")

    @property
    def partials_topic(self) -> str:
        """Pre-aggregated partial sums, routed by table key."""
        return self.topic("partials")

    @property
    def dedup_topic(self) -> str:
        """Event ids already counted, per usage partition (restored after restarts)."""
        return self.topic("dedup")

    @property
    def dead_letter_topic(self) -> str:
        """Invalid events with their rejection reason."""
        return self.topic("dead-letter")

    @property
    def rankings_topic(self) -> str:
        """Ranking changes of the top N."""
        return self.topic("rankings.changes")

    @property
    def alerts_topic(self) -> str:
        """Growth alerts."""
        return self.topic("alerts")

    @property
    def notify_dead_letter_topic(self) -> str:
        """Ranking changes and alerts ``tokenboard notify`` gave up delivering to a target."""
        return self.topic("notify.dead-letter")

    @property
    def ranker_state_topic(self) -> str:
        """The ranker's record of what it published (compacted): it outlives Redis."""
        return self.topic("ranker.state")

    @property
    def run_path(self) -> Path:
        """The local stack's run folder (pids, logs, data)."""
        return Path(self.run_dir).resolve()

    @property
    def api_key_set(self) -> frozenset[str]:
        """Configured ingest API keys (comma separated in the environment)."""
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())

    def kafka_client_options(self) -> dict[str, Any]:
        """Keyword arguments shared by every aiokafka client of the project."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = self.kafka_sasl_password
        if "SSL" in self.kafka_security_protocol:
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context(cafile=self.kafka_ssl_cafile or None)
        return options


def _coerce(f: dataclasses.Field[Any], raw: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError as exc:
        raise InvalidInput(f"{_env_name(f.name)}={raw!r} is not a valid {kind}") from exc
    return raw


def _range(low: float | None, high: float | None) -> str:
    if high is None:
        return "must be greater than 0" if low == 1e-9 else f"must be at least {low:g}"
    if low is None:
        return f"must be at most {high:g}"
    return f"must be between {low:g} and {high:g}"


def env_documentation() -> list[tuple[str, str]]:
    """(variable, default) pairs for every setting, for the README and ``--help``."""
    return [(_env_name(f.name), str(f.default)) for f in dataclasses.fields(Settings)]
