"""Tasks that poll the real Redis stop when cancelled through ``cancel_and_wait``.

One ``cancel()`` is not enough on Python 3.11: redis-py sends each command inside
``asyncio.wait_for``, which drops a cancellation arriving as the send completes, and the
task runs on (``streams/tasks.py``). A test's sampling task that did so hung a cluster test
until pytest's limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

import redis.asyncio as aioredis

from streams.settings import Settings
from streams.tasks import cancel_and_wait


async def test_polling_tasks_end_whenever_the_cancellation_lands(settings: Settings) -> None:
    """100 tasks polling Redis back to back, each cancelled at a random moment: all end."""
    client = aioredis.from_url(settings.redis_url)
    key = f"{settings.redis_prefix}:cancel-probe"

    async def poll() -> None:
        while True:
            with contextlib.suppress(aioredis.RedisError, OSError):
                await client.hget(key, "tokens")
            await asyncio.sleep(0)

    try:
        for _ in range(100):
            task = asyncio.ensure_future(poll())
            await asyncio.sleep(random.uniform(0.001, 0.01))
            stopped = await cancel_and_wait([task], 5.0)
            assert stopped, "a polling task still ran 5 s after cancel_and_wait began"
            assert task.cancelled()
    finally:
        await client.aclose()
