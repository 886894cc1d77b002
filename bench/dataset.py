"""The benchmark dataset: N usage events written once into ``<prefix>.usage``.

Events follow the wire format of :func:`aggregations.events.encode_event`, keyed by
``event_id``, spread over catalog-like models with a Zipf skew and over the last few ISO
weeks, in event-time order. The expected week and (week, model) token totals are computed
while generating, so a consumer's result can be checked exactly.

Records are written with aiokafka's explicit batches (``create_batch`` / ``send_batch``):
building them costs about a microsecond per record, against ~15 µs for ``send()``. The
partition is ``crc32(event_id) % P`` rather than Kafka's murmur2 (7 µs per key in pure
Python); every id is unique, so which partition an id lands on does not matter as long as
it is a function of the id.
"""

from __future__ import annotations

import asyncio
import builtins
import random
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from aggregations.weeks import DAY_MS, WEEK_MS, week_id, week_start_ms
from bench.kafka_admin import create_topic
from bench.progress import Progress, say
from streams.settings import Settings
from streams.worker.catalog import shipped_catalog

COUNTRIES = ("US", "CN", "DE", "FR", "GB", "JP", "IN", "BR", "KR", "CA")
#: Share of events that name their caller's country (the rest use the catalog's).
COUNTRY_SHARE = 0.25
CHUNK = 10_000  # orjson.dumps results pin 4 KiB each until the batch copies them
MAX_BATCH_BYTES = 512 * 1024


@dataclass(frozen=True)
class DatasetSpec:
    """What to generate."""

    events: int
    models: int
    weeks: int
    partitions: int
    seed: int = 7
    zipf_s: float = 1.1


@dataclass
class Expected:
    """What every consumer of the dataset must end up with."""

    topic: str
    events: int
    partitions: int
    bytes: int = 0  # of JSON values (shadows the type inside the class: see builtins below)
    models: list[str] = field(default_factory=list)
    week_tokens: dict[str, int] = field(default_factory=dict)
    week_events: dict[str, int] = field(default_factory=dict)
    cell_tokens: dict[tuple[str, str], int] = field(default_factory=dict)
    produce_seconds: float = 0.0

    @property
    def total_tokens(self) -> int:
        """Tokens of the whole dataset."""
        return sum(self.week_tokens.values())

    def to_json(self) -> builtins.bytes:
        """Serialised form (cells as ``week|model`` keys)."""
        data: dict[str, Any] = {
            "topic": self.topic,
            "events": self.events,
            "partitions": self.partitions,
            "bytes": self.bytes,
            "models": self.models,
            "week_tokens": self.week_tokens,
            "week_events": self.week_events,
            "cell_tokens": {f"{w}|{m}": t for (w, m), t in self.cell_tokens.items()},
            "produce_seconds": self.produce_seconds,
        }
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, raw: builtins.bytes) -> Expected:
        """Inverse of :meth:`to_json`."""
        data = orjson.loads(raw)
        cells = {}
        for key, tokens in data["cell_tokens"].items():
            week, model = key.split("|", 1)
            cells[(week, model)] = int(tokens)
        return cls(
            topic=data["topic"],
            events=int(data["events"]),
            partitions=int(data["partitions"]),
            bytes=int(data["bytes"]),
            models=list(data["models"]),
            week_tokens={k: int(v) for k, v in data["week_tokens"].items()},
            week_events={k: int(v) for k, v in data["week_events"].items()},
            cell_tokens=cells,
            produce_seconds=float(data.get("produce_seconds", 0.0)),
        )


def model_ids(count: int) -> list[str]:
    """``count`` model ids: the shipped catalog's first, then synthetic ``bench-lab-K/...``."""
    ids = [info.id for info in shipped_catalog()][:count]
    k = 0
    while len(ids) < count:
        ids.append(f"bench-lab-{k % 40}/model-{k}")
        k += 1
    return ids


def zipf_cum_weights(count: int, s: float) -> list[float]:
    """Cumulative weights 1/rank**s for ``random.choices``."""
    total = 0.0
    out: list[float] = []
    for rank in range(1, count + 1):
        total += 1.0 / rank**s
        out.append(total)
    return out


def time_range(weeks: int, now_ms: int) -> tuple[int, int]:
    """Event-time span: Monday 00:00 UTC of ``weeks - 1`` weeks ago until a minute ago."""
    first = week_start_ms(week_id(now_ms)) - (weeks - 1) * WEEK_MS
    return first, now_ms - 60_000


def generate(
    spec: DatasetSpec, expected: Expected, now_ms: int, id_tag: str
) -> Iterator[list[tuple[bytes, bytes]]]:
    """Chunks of (key, value) records; fills ``expected`` as a side effect."""
    rng = random.Random(spec.seed)
    models = model_ids(spec.models)
    # Shuffle so that the most popular models are not all catalog entries.
    rng.shuffle(models)
    expected.models = sorted(models)
    cum = zipf_cum_weights(len(models), spec.zipf_s)
    start, end = time_range(spec.weeks, now_ms)
    span = end - start
    n = spec.events
    weeks_of_day: dict[int, str] = {}
    week_tokens = expected.week_tokens
    week_events = expected.week_events
    cells = expected.cell_tokens
    dumps = orjson.dumps
    rand = rng.random
    bits = rng.getrandbits
    for first in range(0, n, CHUNK):
        count = min(CHUNK, n - first)
        chosen = rng.choices(models, cum_weights=cum, k=count)
        chunk: list[tuple[bytes, bytes]] = []
        append = chunk.append
        for j in range(count):
            i = first + j
            ts = start + span * i // n
            day = ts // DAY_MS
            week = weeks_of_day.get(day)
            if week is None:
                week = weeks_of_day[day] = week_id(ts)
            model = chosen[j]
            prompt = 50 + int(rand() * 3000)
            completion = 10 + int(rand() * 800)
            event_id = f"{id_tag}{bits(96):024x}"
            event: dict[str, object] = {
                "event_id": event_id,
                "ts": ts,
                "model": model,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
            }
            if rand() < COUNTRY_SHARE:
                event["country"] = COUNTRIES[int(rand() * len(COUNTRIES))]
            tokens = prompt + completion
            week_tokens[week] = week_tokens.get(week, 0) + tokens
            week_events[week] = week_events.get(week, 0) + 1
            cell = (week, model)
            cells[cell] = cells.get(cell, 0) + tokens
            append((event_id.encode(), dumps(event)))
        yield chunk


async def produce(settings: Settings, spec: DatasetSpec, *, show: bool = True) -> Expected:
    """Create ``<prefix>.usage`` and write the dataset into it; returns the expected totals."""
    topic = settings.usage_topic
    await create_topic(settings, topic, spec.partitions, retention_ms=7 * DAY_MS)
    expected = Expected(topic=topic, events=spec.events, partitions=spec.partitions)
    producer = AIOKafkaProducer(
        **settings.kafka_client_options(),
        acks=1,
        linger_ms=50,
        max_batch_size=MAX_BATCH_BYTES,
        max_request_size=4 * 1024 * 1024,
        compression_type=None,
        request_timeout_ms=60_000,
    )
    await producer.start()
    progress = Progress("dataset", spec.events)
    started = time.monotonic()
    sent = 0
    in_flight: list[asyncio.Future[Any]] = []
    try:
        batches: dict[int, Any] = {}
        now_ms = int(time.time() * 1000)
        id_tag = f"{spec.seed:x}-"
        for chunk in generate(spec, expected, now_ms, id_tag):
            for key, value in chunk:
                partition = zlib.crc32(key) % spec.partitions
                batch = batches.get(partition)
                if batch is None:
                    batch = batches[partition] = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    batch.close()
                    in_flight.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = batches[partition] = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
                expected.bytes += len(value)
            sent += len(chunk)
            if len(in_flight) > 64:
                await asyncio.gather(*in_flight)
                in_flight.clear()
            if show:
                progress.update(sent)
        for partition, batch in batches.items():
            batch.close()
            in_flight.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*in_flight)
    finally:
        await producer.stop()
    expected.produce_seconds = time.monotonic() - started
    if show:
        progress.done(sent)
    return expected


def expected_path(data_dir: Path, prefix: str) -> Path:
    """Where the expected totals of the dataset of ``prefix`` are kept (for ``--reuse``)."""
    return data_dir / f"{prefix}.expected.json"


async def build_dataset(
    settings: Settings, spec: DatasetSpec, data_dir: Path, *, reuse: bool = False
) -> Expected:
    """Produce the dataset, or reuse the one already under this prefix."""
    path = expected_path(data_dir, settings.topic_prefix)
    if reuse and path.exists():
        expected = Expected.from_json(path.read_bytes())
        say(f"reusing dataset {expected.topic}: {expected.events:,} events")
        return expected
    expected = await produce(settings, spec)
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_bytes(expected.to_json())
    return expected
