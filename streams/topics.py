"""Topic administration: every topic tokenboard owns, with its partitions and cleanup policy."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from aggregations.weeks import DAY_MS
from streams.settings import Settings


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic as tokenboard wants it."""

    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The topics tokenboard creates (Faust creates its own changelog topics)."""
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
        # One ordered log, latest value per key: the ranker reads it whole when it starts.
        TopicSpec(settings.ranker_state_topic, 1, {"cleanup.policy": "compact"}),
        *optional,
    ]


async def ensure_topics(settings: Settings, replication: int | None = None) -> list[str]:
    """Create missing topics; return the names that were created (idempotent)."""
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
    return created


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
