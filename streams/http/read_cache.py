"""Cached answers of the read API: computed once per snapshot change, served from memory.

The version of what Redis holds is read with one pipelined round trip (:func:`read_version`):
the snapshot writers' ``snapshot:at`` stamp, which every worker sets after the values of each
write, the watermark (set after the stamp) and the current week, the weeks with data and the
closed weeks, and the ranker's ``ranked`` fingerprints. A request uses the version read by a
check that started at most ``check_s`` before it (one check at a time per process, shared by
all requests), and an answer computed under that version; otherwise the answer is computed
again, once for all the requests that want it.

The bound: an answer is tagged with a version read *before* its computation read any data, so
a change whose version write reached Redis more than ``check_s`` before a request is in the
answer that request gets. The stamp is a worker's wall clock in milliseconds, so two workers
could stamp the same millisecond (on skewed clocks, a later write can even repeat an earlier
stamp); an answer is therefore never reused for longer than ``max_age_s`` either.

Answers carry a strong ``ETag`` (a hash of the body, so every API process behind one port
gives the same tag to the same answer), ``Last-Modified`` (the last snapshot write) and
``Cache-Control: public, no-cache``; ``If-None-Match`` with a matching tag is answered 304.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from email.utils import formatdate

import orjson
import redis.asyncio as aioredis
from aiohttp import web

from streams.http.server_metrics import CACHE_ANSWERS, CACHE_VERSION_READS
from streams.store.keys import RedisKeys

__all__ = ["CachedAnswer", "ReadCache", "Version", "etag_matches", "read_version"]

#: Answers kept per process, least recently used dropped first (keys come from query strings).
MAX_ENTRIES = 1024
CACHE_CONTROL = "public, no-cache"
#: The headers of a 200 besides the validators, unless ``answer`` is given others.
JSON_HEADERS: Mapping[str, str] = {"Content-Type": "application/json; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class Version:
    """What the snapshot writers and the ranker last wrote, as one digest."""

    digest: bytes
    #: The last snapshot write (wall-clock ms), for ``Last-Modified``; None before any.
    snapshot_at_ms: int | None


async def read_version(client: aioredis.Redis, keys: RedisKeys) -> Version:
    """The current version: one pipelined round trip of read-only commands (a Redis user
    with ``+@read`` only may run it)."""
    pipe = client.pipeline(transaction=False)
    pipe.get(keys.snapshot_at)
    pipe.get(keys.watermark)
    pipe.get(keys.current_week)
    pipe.zrange(keys.weeks, 0, -1)
    pipe.zrange(keys.closed_weeks, 0, -1)
    pipe.hgetall(keys.ranked)
    values = await pipe.execute()
    CACHE_VERSION_READS.inc()
    # Sorted keys: Redis may list an unchanged hash's fields in another order after a rehash.
    digest = hashlib.blake2b(orjson.dumps(values, option=orjson.OPT_SORT_KEYS), digest_size=16)
    stamp = values[0]
    return Version(digest.digest(), int(stamp) if stamp else None)


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """One computed answer and the version it was computed under."""

    digest: bytes
    computed_at: float
    body: bytes
    #: The validators (ETag, Last-Modified, Cache-Control): a 304 carries these.
    headers: dict[str, str]
    #: ``headers`` and the content type (JSON unless asked otherwise): a 200 carries these.
    body_headers: dict[str, str]


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak comparison, RFC 9110)."""
    wanted = etag.removeprefix("W/")
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == wanted:
            return True
    return False


class ReadCache:
    """Answers by key, each valid while the version it was computed under is current."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: RedisKeys,
        *,
        check_s: float,
        max_age_s: float,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.keys = keys
        self.check_s = check_s
        self.max_age_s = max_age_s
        self.max_entries = max_entries
        self._clock = clock
        self._version: Version | None = None
        self._version_started = float("-inf")
        self._check: asyncio.Future[Version] | None = None
        self._check_started = float("-inf")
        self._entries: OrderedDict[Hashable, CachedAnswer] = OrderedDict()
        self._computing: dict[Hashable, tuple[bytes, asyncio.Future[CachedAnswer]]] = {}

    async def version(self) -> Version:
        """The version read by a check that started at most ``check_s`` ago (one check at a
        time: concurrent requests share it)."""
        now = self._clock()
        if self._version is not None and now - self._version_started <= self.check_s:
            return self._version
        check = self._check
        if check is None or now - self._check_started > self.check_s:
            self._check_started = now
            check = self._check = asyncio.ensure_future(self._read_version(now))
        # Shielded: one request going away must not cancel the check the others wait for.
        return await asyncio.shield(check)

    async def _read_version(self, started: float) -> Version:
        try:
            version = await read_version(self.client, self.keys)
        finally:
            if self._check_started == started:
                self._check = None
        if started >= self._version_started:
            self._version, self._version_started = version, started
        return version

    async def answer(
        self,
        request: web.Request,
        key: Hashable,
        compute: Callable[[], Awaitable[bytes]],
        content_headers: Mapping[str, str] = JSON_HEADERS,
    ) -> web.Response:
        """The answer for ``key`` (``compute`` makes its JSON body when the cached one is
        not of the current version), or a 304 when the request already has it.

        ``content_headers`` (a Content-Type, a Content-Disposition) go with a 200 instead
        of the JSON content type: they must be the same for every request of ``key``."""
        version = await self.version()
        entry = self._entries.get(key)
        if (
            entry is not None
            and entry.digest == version.digest
            and self._clock() - entry.computed_at <= self.max_age_s
        ):
            self._entries.move_to_end(key)
            result = "hit"
        else:
            entry = await self._compute_once(key, version, compute, content_headers)
            result = "miss"
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match and etag_matches(if_none_match, entry.headers["ETag"]):
            CACHE_ANSWERS.labels("not_modified").inc()
            return web.Response(status=304, headers=entry.headers)
        CACHE_ANSWERS.labels(result).inc()
        # Content-Type is among the prepared headers: aiohttp's content_type argument parses.
        return web.Response(body=entry.body, headers=entry.body_headers)

    async def _compute_once(
        self,
        key: Hashable,
        version: Version,
        compute: Callable[[], Awaitable[bytes]],
        content_headers: Mapping[str, str],
    ) -> CachedAnswer:
        running = self._computing.get(key)
        if running is not None and running[0] == version.digest:
            return await asyncio.shield(running[1])
        task = asyncio.ensure_future(self._compute(key, version, compute, content_headers))
        self._computing[key] = (version.digest, task)

        def forget(done: asyncio.Future[CachedAnswer]) -> None:
            current = self._computing.get(key)
            if current is not None and current[1] is done:
                del self._computing[key]
            if not done.cancelled():
                done.exception()  # retrieved: every waiter got it already

        task.add_done_callback(forget)
        return await asyncio.shield(task)

    async def _compute(
        self,
        key: Hashable,
        version: Version,
        compute: Callable[[], Awaitable[bytes]],
        content_headers: Mapping[str, str],
    ) -> CachedAnswer:
        started = self._clock()
        body = await compute()
        headers = {
            "ETag": '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"',
            "Cache-Control": CACHE_CONTROL,
        }
        if version.snapshot_at_ms is not None:
            headers["Last-Modified"] = formatdate(version.snapshot_at_ms / 1000, usegmt=True)
        body_headers = {**headers, **content_headers}
        entry = CachedAnswer(version.digest, started, body, headers, body_headers)
        current = self._entries.get(key)
        # A computation under an older version that finishes last must not replace a newer one.
        if current is None or current.computed_at <= started:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return entry
