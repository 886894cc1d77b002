"""The Faust app of a worker: its settings, and typed ways to register jobs on it.

Faust's ``App.timer`` and ``App.task`` are marked ``@no_type_check``, so a function decorated
with them loses its type. :func:`add_timer` and :func:`add_task` register a job without
decorating it: the job keeps its signature and the calls stay checked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import faust

from streams.settings import Settings
from streams.worker.rewind import RewindingApp

#: A periodic or one-shot job: no argument (Faust passes the app to a job that takes one).
Job = Callable[[], Awaitable[None]]


def broker_url(bootstrap: str) -> str:
    """Faust's broker URL for a comma-separated Kafka bootstrap list."""
    return ";".join(f"kafka://{host}" for host in bootstrap.split(","))


def faust_credentials(settings: Settings) -> Any:
    """Faust's ``broker_credentials``: None (PLAINTEXT), an SSL context, or SASL credentials."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    ssl_context = None
    if "SSL" in protocol:
        from aiokafka.helpers import create_ssl_context

        ssl_context = create_ssl_context(cafile=settings.kafka_ssl_cafile or None)
    if settings.kafka_sasl_mechanism:
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=ssl_context,
        )
    return ssl_context


def new_faust_app(settings: Settings) -> RewindingApp:
    """The worker's Faust app (not started), its data folder under the run folder."""
    (settings.run_path / "faust").mkdir(parents=True, exist_ok=True)
    return RewindingApp(
        settings.app_id,
        broker=broker_url(settings.kafka_bootstrap),
        broker_credentials=faust_credentials(settings),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        web_enabled=False,
        autodiscover=False,
        producer_acks=-1,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        broker_session_timeout=20.0,
        broker_heartbeat_interval=3.0,
        # Standby copies of changelog partitions in other workers (TOKENBOARD_STANDBY_REPLICAS;
        # with the memory store they do not shorten a takeover, RELIABILITY.md).
        table_standby_replicas=settings.standby_replicas,
        # Faust's own data folder goes under the run folder, not the working directory.
        datadir=str(settings.run_path / "faust" / settings.app_id),
        # Changelog records leave in few large requests instead of one request each.
        producer_linger=0.02,
        producer_max_batch_size=1024 * 1024,
        key_serializer="json",
        value_serializer="json",
    )


def add_timer(app: faust.App, interval_s: float, job: Job, *, on_leader: bool = False) -> None:
    """Run ``job`` every ``interval_s`` seconds while the app runs (``on_leader``: only on
    the worker that is the group's leader)."""
    register = cast(Callable[[Job], object], app.timer(interval_s, on_leader=on_leader))
    register(job)


def add_task(app: faust.App, job: Job) -> None:
    """Run ``job`` once when the app has started."""
    register = cast(Callable[[Job], object], app.task)
    register(job)
