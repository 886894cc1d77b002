"""Display names of the members that ranking changes and alerts name, read from Redis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from aggregations.describe import describe_event
from aggregations.report import COUNTRY_NAMES
from streams.store.keys import RedisKeys

__all__ = ["ALERT_SUBJECTS", "EventNamer"]


#: What the ``subject`` of each alert kind is (:mod:`aggregations.alerts`): a model id, a
#: country code, the global total, or (late corrections) the dimension that was corrected.
ALERT_SUBJECTS = {
    "surge": "model",
    "drop": "model",
    "new_model_at_top": "model",
    "leader_change": "country",
    "leader_streak": "country",
    "country_growth_streak": "country",
    "growth_streak": "total",
    "late_correction": "dimension",
}
GLOBAL_NAME = "Global"


class EventNamer:
    """Display names of the members named in events, looked up in Redis once each."""

    def __init__(self, client: aioredis.Redis, keys: RedisKeys) -> None:
        self.client = client
        self.keys = keys
        self._names: dict[tuple[str, str, str], str] = {}

    async def name(self, event: Mapping[str, Any]) -> str:
        """The display name of what the event is about: the ``member`` of a ranking change,
        the ``subject`` of an alert (both keep the id). Models are named as the pipeline
        recorded them (their id when unknown), countries by :data:`COUNTRY_NAMES`, vendors by
        themselves, the global total ``Global``."""
        if event.get("type") == "alert":
            member = str(event.get("subject") or "")
            dimension = ALERT_SUBJECTS.get(str(event.get("kind")), "")
        else:
            member = str(event.get("member") or "")
            dimension = str(event.get("dimension", ""))
        if dimension == "country":
            return COUNTRY_NAMES.get(member, member)
        if dimension == "total":
            return GLOBAL_NAME
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

    async def payload(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The event as the live feed and ``tokenboard watch --json`` show it: as published,
        plus ``name`` (:meth:`name`) and ``text`` (the line ``tokenboard watch`` prints)."""
        name = await self.name(event)
        return {**event, "name": name, "text": describe_event(event, name)}
