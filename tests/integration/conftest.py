"""Fixtures for tests against the real Kafka broker and the real redis-server.

One broker and one Redis per test session: reused when TOKENBOARD_KAFKA_BOOTSTRAP and
TOKENBOARD_REDIS_URL point to running ones (as `make test` does), otherwise started from the
local stack on test ports and stopped at the end. Every test gets its own topic and key
prefixes, removed afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from aggregations.scenario import Scenario
from streams.dev.replay import load_scenario
from streams.dev.stack import LocalStack, _kafka_answers, _redis_version
from streams.settings import Settings
from streams.topics import delete_topics_with_prefix
from tests.integration import process_logs
from tests.integration.private_stack import delete_redis_keys
from tests.integration.processes import WorkerProcess

SEED_PATH = Path(__file__).resolve().parents[1] / "data" / "seed-2026-w47.json"

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration is an integration test."""
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def process_log_folder(tmp_path: Path) -> Iterator[Path]:
    """Processes this test starts log under its tmp folder."""
    folder = tmp_path / "logs"
    process_logs.begin(folder)
    yield folder
    process_logs.end()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing integration test's report ends with the tail of each process's log."""
    report = yield
    if report.failed:
        for title, text in process_logs.tails():
            report.sections.append((title, text))
    return report


def _reachable(settings: Settings) -> bool:
    host_port = settings.kafka_bootstrap.split(",")[0]
    kafka_port = int(host_port.rsplit(":", 1)[1])
    redis_port = int(settings.redis_url.rsplit(":", 1)[1].split("/")[0])
    probe = settings.replace(kafka_port=kafka_port, redis_port=redis_port)
    return _kafka_answers(probe) and _redis_version(redis_port) is not None


def _show_logs_on_failure(stack: LocalStack) -> None:
    for name in ("kafka", "redis"):
        process_logs.watch_shared(stack.log_file(name), f"shared {name}")


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[Settings]:
    """Settings pointing at a running broker and Redis (started here when needed)."""
    env = Settings.from_env()
    if "TOKENBOARD_KAFKA_BOOTSTRAP" in os.environ and _reachable(env):
        _show_logs_on_failure(LocalStack(env))
        yield env
        return
    settings = env.replace(
        run_dir=".run/pytest",
        kafka_port=29092,
        kafka_controller_port=29093,
        redis_port=26379,
        kafka_bootstrap="127.0.0.1:29092",
        redis_url="redis://127.0.0.1:26379/0",
    )
    stack = LocalStack(settings)
    _show_logs_on_failure(stack)
    stack.up()
    try:
        yield settings
    finally:
        stack.down()


@pytest.fixture
async def settings(stack_settings: Settings) -> AsyncIterator[Settings]:
    """Per-test settings with unique topic, Redis and consumer-group prefixes."""
    tag = "t" + uuid.uuid4().hex[:10]
    s = stack_settings.replace(
        topic_prefix=tag,
        redis_prefix=tag,
        app_id=tag,
        partitions=4,
        flush_interval_ms=200,
        snapshot_interval_ms=200,
    )
    yield s
    await delete_topics_with_prefix(s, tag)
    await delete_redis_keys(s.redis_url, tag)


@pytest.fixture
async def redis_client(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """An async Redis client on the test server."""
    client = aioredis.from_url(settings.redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def start_worker(settings: Settings) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory of real worker processes, all stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def start(name: str = "w1", *, wait: bool = True, **overrides: object) -> WorkerProcess:
        worker = WorkerProcess(settings.replace(**overrides), name).start()
        started.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="session")
def seed_scenario() -> Scenario:
    """The seed scenario table shipped in tests/data."""
    return load_scenario(SEED_PATH)
