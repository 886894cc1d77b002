"""Display names of the members that ranking changes and alerts name, read from Redis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from streams.store.keys import RedisKeys

__all__ = ["EventNamer"]


class EventNamer:
    """Display names of the members named in events, looked up in Redis once each."""

    def __init__(self, client: aioredis.Redis, keys: RedisKeys) -> None:
        self.client = client
        self.keys = keys
        self._names: dict[tuple[str, str, str], str] = {}

    async def name(self, event: Mapping[str, Any]) -> str:
        """The display name of the event's member (its id when unknown)."""
        member = str(event.get("member") or event.get("subject") or "")
        dimension = str(event.get("dimension", ""))
        if dimension != "model":
            return member
        key = (dimension, str(event.get("week", "")), member)
        if key not in self._names:
            try:
                # A str: every client decodes responses (streams.store.client).
                raw = cast("str | None", await self.client.hget(self.keys.member(*key), "name"))
            except RedisError:
                raw = None  # names are a nicety; the feed goes on with ids
            self._names[key] = raw or member
        return self._names[key]
