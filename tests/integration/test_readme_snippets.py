"""Every Python snippet of the README runs as written, against the real broker."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from streams.settings import Settings
from streams.topics import ensure_topics
from tests.integration.kafka_read import read_topic

README = Path(__file__).resolve().parents[2] / "README.md"
SNIPPET = re.compile(r"```python\n(.*?)```", re.DOTALL)


def snippets() -> list[str]:
    """The README's ```python blocks, in order."""
    return SNIPPET.findall(README.read_text())


def test_the_readme_has_its_three_sdk_snippets() -> None:
    """The scan finds the subscriber, the async producer and the sync producer."""
    found = snippets()
    assert len(found) == 3
    assert "subscribe(" in found[0] and "UsageProducer(" in found[1]
    assert "SyncUsageProducer(" in found[2]


async def test_the_producer_snippets_run_and_their_events_land(
    settings: Settings, tmp_path: Path
) -> None:
    """The async and sync producer snippets exit 0 and put their 3 + 2 records on the
    usage topic (the sync one resends its event)."""
    await ensure_topics(settings)
    env = {**os.environ, **settings.to_env()}
    for index, code in enumerate(snippets()[1:]):
        script = tmp_path / f"snippet{index}.py"
        script.write_text(code)
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    records = await read_topic(settings, settings.usage_topic)
    assert len(records) == 5
    assert {orjson.loads(r.value)["model"] for r in records} == {"openai/gpt-5.1", "qwen/qwen3-max"}


async def test_the_subscriber_snippet_prints_what_is_published(
    settings: Settings, tmp_path: Path
) -> None:
    """The subscriber snippet, started as written, prints an alert published after it joined
    (week, type, kind and the alert's subject)."""
    await ensure_topics(settings)
    script = tmp_path / "subscriber.py"
    script.write_text(snippets()[0])
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        env={**os.environ, **settings.to_env()},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    producer = AIOKafkaProducer(**settings.kafka_client_options(), acks="all")
    await producer.start()
    try:
        assert proc.stdout is not None
        alert = {"id": "readme-1", "type": "alert", "kind": "surge", "week": "2026-W47",
                 "subject": "CN", "message": "CN +20%"}  # fmt: skip
        line = b""
        for _ in range(60):  # the consumer group joins, then reads from the end
            await producer.send_and_wait(settings.alerts_topic, orjson.dumps(alert))
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), 1.0)
                break
            except TimeoutError:
                continue
        assert line.decode().split() == ["2026-W47", "alert", "surge", "CN"]
    finally:
        await producer.stop()
        proc.kill()
        await proc.wait()
