"""``tokenboard notify`` against the real Kafka and Redis, posting to local HTTP receivers.

Receivers stand for the targets: healthy, down (nothing listens: connection refused),
answering 5xx before they recover, answering 4xx, and slow (held on a gate the test opens,
so "slow" is a state the test controls, not a duration it measures). Every wait is on a
condition with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from aggregations.alerts import late_correction_alert
from aggregations.rankings import Ranked, rank_changes
from streams.notify.config import parse_config
from streams.notify.lane import Lane
from streams.notify.notifier import Notifier
from streams.settings import Settings
from streams.store.keys import RedisKeys
from streams.topics import ensure_topics
from tests.integration.kafka_read import read_topic
from tests.integration.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
WEEK = "2026-W47"
DEADLINE_S = 30.0
#: Fast retries: the tests wait for attempts to happen, never for a duration.
RETRY = {"backoff_initial_s": 0.05, "backoff_max_s": 0.2, "start": "earliest"}


class Receiver:
    """A local webhook endpoint recording the event id of every request it gets."""

    def __init__(self, *, fail_first: int = 0, status: int = 200) -> None:
        #: Requests answered ``fail_first`` times 500, then ``status`` (503 while not ``up``).
        self.fail_first = fail_first
        self.status = status
        self.up = True
        #: Closed: requests wait on it (a slow target).
        self.gate = asyncio.Event()
        self.gate.set()
        self.requests: list[str] = []
        self.accepted: list[str] = []
        self.bodies: dict[str, Any] = {}
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        """Record the request, wait for the gate, then answer as configured."""
        event_id = request.headers["X-Tokenboard-Event-Id"]
        self.requests.append(event_id)
        self.bodies[event_id] = await request.json()
        await self.gate.wait()
        if len(self.requests) <= self.fail_first:
            return web.Response(status=500, text="failing on purpose")
        if not self.up:
            return web.Response(status=503, text="down for maintenance")
        if 200 <= self.status < 300:
            self.accepted.append(event_id)
        return web.Response(status=self.status, text="answered")

    async def start(self) -> Receiver:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def close(self) -> None:
        """Stop listening."""
        self.gate.set()
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    """Factory of started receivers, all closed at the end of the test."""
    started: list[Receiver] = []

    async def make(**options: Any) -> Receiver:
        receiver = await Receiver(**options).start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        await receiver.close()


def target(name: str, url: str, kind: str = "webhook", **options: Any) -> dict[str, Any]:
    """One [[targets]] entry with fast retries."""
    return {"name": name, "kind": kind, "url": url, **RETRY, **options}


def published_events(count: int) -> list[dict[str, Any]]:
    """``count`` distinct events as the leader publishes them: ranking changes of a new top
    list (a new leader, then entries), and late-correction alerts."""
    board = [Ranked(i + 1, f"lab/model-{i}", 3_430_000_000_000 - i) for i in range(count)]
    changes = rank_changes("model", WEEK, [], board, count, "live")
    alerts = [late_correction_alert(WEEK, "model", n, n * 1000) for n in range(1, count + 1)]
    mixed = [event for pair in zip(changes, alerts, strict=False) for event in pair]
    return mixed[:count]


async def publish(
    settings: Settings, events: Sequence[dict[str, Any]], partition: int | None = None
) -> None:
    """Produce events to their topic (changes or alerts), keyed by id as the leader does."""
    producer = AIOKafkaProducer(**settings.kafka_client_options(), acks="all")
    await producer.start()
    try:
        for event in events:
            topic = settings.alerts_topic if event["type"] == "alert" else settings.rankings_topic
            await producer.send_and_wait(
                topic, orjson.dumps(event), key=event["id"].encode(), partition=partition
            )
    finally:
        await producer.stop()


async def until(condition: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    """Wait until ``condition()`` holds; fail naming ``what`` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(
    settings: Settings, config: dict[str, Any], queue_size: int = 100
) -> AsyncIterator[Notifier]:
    """A notifier running in this event loop, ready (every lane holds its partitions)."""
    notifier = Notifier(settings, parse_config(config), queue_size=queue_size)
    task = asyncio.create_task(notifier.run())
    try:
        await until(lambda: notifier.ready.is_set() or task.done(), "notify ready")
        if task.done():
            task.result()
        yield notifier
    finally:
        notifier.stop()
        await asyncio.wait_for(task, DEADLINE_S)


def lane(notifier: Notifier, name: str) -> Lane:
    """The lane of target ``name``."""
    return next(lane for lane in notifier.lanes if lane.target.name == name)


def once_each(ids: Sequence[str]) -> bool:
    """No id appears twice."""
    return all(n == 1 for n in Counter(ids).values())


def sample(metric: str, name: str) -> float:
    """The current value of a notify counter for one target."""
    return REGISTRY.get_sample_value(metric, {"target": name}) or 0.0


async def test_a_healthy_target_gets_every_event_once_while_others_are_down_or_slow(
    settings: Settings, redis_client: aioredis.Redis, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    """While one target refuses connections, one fails twice and one hangs on every
    request, the healthy and Slack targets receive all six events, each once (the two
    republished ids are skipped); the others catch up, each event once too."""
    await ensure_topics(settings)
    healthy, slack, flaky, slow = [await receivers() for _ in range(4)]
    flaky.fail_first = 2
    slow.gate.clear()
    config = {
        "targets": [
            target("healthy", healthy.url),
            target("slack", slack.url, kind="slack"),
            target("down", f"http://127.0.0.1:{free_port()}/hook", max_attempts=1000),
            target("flaky", flaky.url),
            target("slow", slow.url, timeout_s=DEADLINE_S * 2),
        ]
    }
    events = published_events(6)
    ids = {e["id"] for e in events}
    leader = events[0]
    await redis_client.hset(
        RedisKeys(settings.redis_prefix).member("model", WEEK, leader["member"]),
        mapping={"name": "Model Zero"},
    )
    failed_before = sample("tokenboard_notify_failed_total", "down")
    # A queue of two: the lanes held up pause their partitions, and resume them later.
    async with running(settings, config, queue_size=2) as notifier:
        await publish(settings, [*events, events[0], events[1]])

        await until(lambda: set(healthy.accepted) == ids, "the healthy target has every event")
        await until(lambda: set(slack.accepted) == ids, "the Slack target has every event")
        await until(lambda: len(slow.requests) == 1, "the slow target has its first request")
        assert slow.accepted == []  # held on its first request all along
        await until(
            lambda: lane(notifier, "down").counts.failed_attempts > 0, "the down target was tried"
        )

        slow.gate.set()
        for receiver, name in ((slow, "slow"), (flaky, "flaky"), (healthy, "healthy")):
            await until(lambda r=receiver: set(r.accepted) == ids, f"{name} has every event")
            await until(
                lambda n=name: lane(notifier, n).counts.duplicates == 2,
                f"{name} skipped both republished ids",
            )
            assert once_each(receiver.accepted), f"{name} got an id twice: {receiver.accepted}"
        assert len(healthy.requests) == len(slow.requests) == 6 and len(flaky.requests) == 8
        assert lane(notifier, "down").counts.delivered == 0

    assert slack.bodies[leader["id"]] == {
        "text": f"🥇 Model Zero is the new #1 model in {WEEK} (3.43T tokens)"
    }
    assert healthy.bodies[leader["id"]] == leader
    assert sample("tokenboard_notify_failed_total", "down") > failed_before


async def test_a_restart_delivers_what_was_left_and_never_repeats(
    settings: Settings, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    """Stopped while one target is down, notify resumes where each target stopped: the
    target that was down gets everything once it is back, events published while notify
    was stopped reach both (also on partitions no record had reached, with start
    "latest"), and ids published again after the restart are not sent again."""
    await ensure_topics(settings)
    healthy, recovering = await receivers(), await receivers()
    recovering.up = False
    policy = {"backoff_initial_s": 0.05, "backoff_max_s": 0.2, "max_attempts": 1000}
    config = {
        "targets": [
            {"name": "healthy", "kind": "webhook", "url": healthy.url, **policy},
            {"name": "recovering", "kind": "webhook", "url": recovering.url, **policy},
        ]
    }
    first, later = published_events(5)[:3], published_events(5)[3:]
    async with running(settings, config):
        await publish(settings, first, partition=0)
        await until(lambda: len(healthy.accepted) == 3, "the healthy target has the first three")
        await until(lambda: len(recovering.requests) >= 2, "the down target is being retried")

    await publish(settings, later[:1], partition=1)
    await publish(settings, later[1:], partition=2)
    await publish(settings, first, partition=3)  # republished under the same ids
    recovering.up = True
    every = {e["id"] for e in [*first, *later]}
    async with running(settings, config) as notifier:
        for receiver, name in ((healthy, "healthy"), (recovering, "recovering")):
            await until(lambda r=receiver: set(r.accepted) == every, f"{name} has all five")
            await until(
                lambda n=name: lane(notifier, n).counts.duplicates == 3,
                f"{name} skipped the three republished ids",
            )
            assert once_each(receiver.accepted), f"{name} got an id twice: {receiver.accepted}"
        assert len(healthy.requests) == 5


async def test_after_the_last_attempt_an_event_goes_to_the_dead_letter_topic(
    settings: Settings, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    """A target answering 500 gets max_attempts tries, one answering 404 a single one; then
    the event is on notify.dead-letter with target, reason and attempts, and the healthy
    target is not held up by either."""
    await ensure_topics(settings)
    healthy = await receivers()
    broken = await receivers(fail_first=1_000_000)
    gone = await receivers(status=404)
    config = {
        "targets": [
            target("healthy", healthy.url),
            target("broken", broken.url, max_attempts=3),
            target("gone", gone.url),
        ]
    }
    events = published_events(2)
    before = {n: sample("tokenboard_notify_dead_lettered_total", n) for n in ("broken", "gone")}
    async with running(settings, config) as notifier:
        await publish(settings, events)
        await until(lambda: len(healthy.accepted) == 2, "the healthy target has both")
        for name in ("broken", "gone"):
            await until(
                lambda n=name: lane(notifier, n).counts.dead_lettered == 2,
                f"{name} dead-lettered both",
            )

    letters = [
        orjson.loads(r.value) for r in await read_topic(settings, settings.notify_dead_letter_topic)
    ]
    by_target = {name: [x for x in letters if x["target"] == name] for name in ("broken", "gone")}
    ids = sorted(e["id"] for e in events)
    expected = {"broken": (3, "HTTP 500: failing on purpose"), "gone": (1, "HTTP 404: answered")}
    for name, (attempts, reason) in expected.items():
        assert sorted(x["event"]["id"] for x in by_target[name]) == ids
        assert {(x["attempts"], x["reason"], x["target_kind"]) for x in by_target[name]} == {
            (attempts, reason, "webhook")
        }
        assert sample("tokenboard_notify_dead_lettered_total", name) - before[name] == 2
    assert Counter(broken.requests) == {i: 3 for i in ids}
    assert Counter(gone.requests) == {i: 1 for i in ids}
    assert all(x["source"].startswith(settings.topic_prefix + ".") for x in letters)


async def test_the_command_delivers_and_stops_cleanly_on_ctrl_c(
    settings: Settings, receivers: Callable[..., Awaitable[Receiver]], tmp_path: Path
) -> None:
    """``tokenboard notify --config`` delivers, and SIGINT ends it with exit 0, a summary
    per target and no traceback."""
    await ensure_topics(settings)
    healthy = await receivers()
    path = tmp_path / "notify.json"
    path.write_text(orjson.dumps({"targets": [target("cli-target", healthy.url)]}).decode())
    events = published_events(2)
    await publish(settings, events)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streams", "notify", "--config", str(path),
        cwd=ROOT, env={**os.environ, **settings.to_env()},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await until(lambda: len(healthy.accepted) == 2, "the command delivered both events")
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have failed and exited
            child.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(child.communicate(), DEADLINE_S)
    log = err.decode()
    assert child.returncode == 0, log
    assert "Traceback" not in log
    assert "cli-target: 2 delivered, 0 dead-lettered" in log
