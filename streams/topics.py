"""Topic administration: every topic tokenboard owns, with its partitions and cleanup policy."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.protocol.metadata import MetadataRequest

from aggregations.weeks import DAY_MS
from streams.settings import Settings


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic as tokenboard wants it."""

    name: str
    partitions: int
    config: dict[str, str]


#: The worker's Faust tables; each has a compacted ``{app_id}-{table}-changelog`` topic.
WEEKLY_TABLE = "weekly"
PROGRESS_TABLE = "progress"

#: How long :func:`ensure_topics` waits for every broker to list the topics it created.
METADATA_WAIT_S = 60.0


def changelog_topic(settings: Settings, table: str) -> str:
    """The name Faust gives a table's changelog topic."""
    return f"{settings.app_id}-{table}-changelog"


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The topics tokenboard creates, Faust's changelogs included.

    Faust would create its changelogs itself when a worker starts, and then read the
    cluster's metadata right away: on a cluster, a node that does not list a new changelog
    yet makes the fold agent fail for good (RELIABILITY.md, bug 21). Made here, they exist
    on every node before Faust starts.
    """
    p = settings.partitions
    dedup_ms = settings.dedup_horizon_seconds * 1000 + DAY_MS
    spans = settings.otlp_spans_topic
    # The Collector writes this one; made here when missing so that it gets P partitions,
    # not the broker's default that a first producer or subscriber would auto-create it with.
    optional = [TopicSpec(spans, p, {"retention.ms": str(7 * DAY_MS)})] if spans else []
    return [
        TopicSpec(settings.usage_topic, p, {"retention.ms": str(7 * DAY_MS)}),
        TopicSpec(settings.partials_topic, p, {"retention.ms": str(7 * DAY_MS)}),
        TopicSpec(settings.dedup_topic, p, {"retention.ms": str(dedup_ms)}),
        TopicSpec(settings.dead_letter_topic, p, {"retention.ms": str(30 * DAY_MS)}),
        TopicSpec(settings.rankings_topic, p, {"retention.ms": str(30 * DAY_MS)}),
        TopicSpec(settings.alerts_topic, p, {"retention.ms": str(30 * DAY_MS)}),
        TopicSpec(settings.notify_dead_letter_topic, p, {"retention.ms": str(30 * DAY_MS)}),
        # One ordered log, latest value per key: the ranker reads it whole when it starts.
        TopicSpec(settings.ranker_state_topic, 1, {"cleanup.policy": "compact"}),
        *[
            TopicSpec(changelog_topic(settings, table), p, {"cleanup.policy": "compact"})
            for table in (WEEKLY_TABLE, PROGRESS_TABLE)
        ],
        *optional,
    ]


async def ensure_topics(settings: Settings, replication: int | None = None) -> list[str]:
    """Create missing topics; return the names that were created (idempotent).

    Returns once every broker's metadata lists every partition of the topics it created, so
    that a client started next cannot ask a node that does not know them yet.
    """
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    created: list[str] = []
    replication = replication or settings.replication
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in topic_specs(settings) if t.name not in existing]
        for spec in wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                response = await admin.create_topics(
                    [NewTopic(spec.name, spec.partitions, replication, topic_configs=spec.config)]
                )
                # aiokafka reports per-topic errors in the response instead of raising.
                errors = {t[0]: t[1] for t in getattr(response, "topic_errors", [])}
                code = errors.get(spec.name, 0)
                if code == 0:
                    created.append(spec.name)
                elif code != TopicAlreadyExistsError.errno:
                    raise RuntimeError(f"creating topic {spec.name} failed with error {code}")
    finally:
        await admin.close()
    if created:
        specs = {t.name: t.partitions for t in topic_specs(settings) if t.name in created}
        await wait_until_listed(settings, specs)
    return created


async def wait_until_listed(
    settings: Settings, partitions: dict[str, int], timeout_s: float = METADATA_WAIT_S
) -> None:
    """Wait until every broker's metadata lists each topic with its number of partitions."""
    client = AIOKafkaClient(**settings.kafka_client_options())
    await client.bootstrap()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            missing = await _unlisted(client, partitions)
            if not missing:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"after {timeout_s:.0f} s the brokers' metadata still misses partitions "
                    f"of {', '.join(missing)}"
                )
            await asyncio.sleep(0.1)
    finally:
        await client.close()


async def _unlisted(client: AIOKafkaClient, partitions: dict[str, int]) -> Sequence[str]:
    """The topics some broker does not list with all their partitions (all, on a failed read)."""
    names = sorted(partitions)
    request = MetadataRequest(names, allow_auto_topic_creation=False)
    missing: set[str] = set()
    for broker in client.cluster.brokers():
        try:
            response = await client.send(broker.nodeId, request)
        except (TimeoutError, KafkaError):
            return names
        led = _partitions_with_leader(response)
        missing.update(name for name in names if led.get(name, 0) != partitions[name])
    return sorted(missing)


def _partitions_with_leader(response: Any) -> dict[str, int]:
    """Per topic of a metadata response, how many of its partitions have a leader."""
    counts: dict[str, int] = {}
    for topic in response.topics:
        # (error, name, partitions) in version 0; (error, name, is_internal, partitions) after.
        error, name, partitions = topic[0], topic[1], topic[-1]
        if error == 0:
            counts[name] = sum(1 for p in partitions if p[0] == 0 and p[2] >= 0)
    return counts


async def delete_topics_with_prefix(settings: Settings, prefix: str) -> list[str]:
    """Delete every topic whose name starts with ``prefix`` (test cleanup)."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()
