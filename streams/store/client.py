"""The one way tokenboard opens Redis: one decoding policy, one pool per process.

Every process makes its client once at start (the worker, the API, a CLI command) and passes
it down. Responses are decoded to ``str``: no reader has to guess whether a value is bytes.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from streams.settings import Settings

__all__ = ["connect"]


def connect(settings: Settings) -> aioredis.Redis:
    """A Redis client with its own connection pool, answering ``str`` (close it with
    ``aclose()``)."""
    return aioredis.from_url(settings.redis_url, decode_responses=True)
