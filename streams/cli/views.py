"""``tokenboard top``, ``history`` and ``watch``: the leaderboard read from a terminal.

``top`` and ``history`` print the dicts of :mod:`streams.store.queries` as fixed-width tables (or
as JSON with ``--json``). ``watch`` follows the rankings and alerts topics with
:class:`EventTail`, which the HTTP API's event stream uses as well.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.exceptions import RedisError

from aggregations.report import format_pct, format_tokens
from streams.settings import Settings
from streams.store import queries
from streams.store.client import connect
from streams.store.keys import RedisKeys
from streams.store.state import WeekNotFound

# Seconds between metadata checks while a followed topic does not exist yet.
TOPIC_RECHECK_S = 5.0


# top / history ------------------------------------------------------------------------------
def run_top(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler: the top N of one dimension and week."""
    result = _query(settings, "leaderboard", args.by, args.week, args.top)
    if result is None:
        return 1
    if args.json:
        _print_json(result)
    else:
        print(render_leaderboard(result))
    return 0


def run_history(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler: the weekly series of one model, country or vendor."""
    if args.model:
        dimension, member = "model", args.model
    elif args.country:
        dimension, member = "country", args.country.upper()
    else:
        dimension, member = "vendor", args.vendor
    result = _query(settings, "history", dimension, member)
    if result is None:
        return 1
    if args.json:
        _print_json(result)
    else:
        print(render_history(result))
    return 0


def _query(settings: Settings, name: str, *args: Any) -> dict[str, Any] | None:
    """Run one query of :mod:`streams.store.queries`; print the error and return None on failure."""

    async def go() -> dict[str, Any]:
        client = connect(settings)
        try:
            result: dict[str, Any] = await getattr(queries, name)(
                client, RedisKeys(settings.redis_prefix), *args
            )
            return result
        finally:
            await client.aclose()

    try:
        return asyncio.run(go())
    except (WeekNotFound, queries.MemberNotFound, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except RedisError as exc:
        print(f"error: Redis at {settings.redis_url}: {exc}", file=sys.stderr)
    return None


_PLURALS = {"model": "models", "country": "countries", "vendor": "vendors"}


def render_leaderboard(board: Mapping[str, Any]) -> str:
    """A leaderboard dict from :func:`streams.store.queries.leaderboard` as a readable table."""
    dimension = board["dimension"]
    has_previous = board["has_previous"]
    head = (
        f"{board['week']} · top {len(board['rows'])} {_PLURALS[dimension]} of {board['ranked']}"
        f" · total {format_tokens(board['total_tokens'])}"
    )
    if not has_previous:
        head += f" · no data for {board['previous_week']}"
    label = {"model": ["model", "vendor", "country"], "country": ["country", "name"]}
    header = ["#", "move", *label.get(dimension, ["vendor"]), "tokens", "WoW", "share"]
    rows = []
    for row in board["rows"]:
        if dimension == "model":
            names = [row["name"], row["vendor"], row["country"]]
        elif dimension == "country":
            names = [row["member"], row["name"]]
        else:
            names = [row["member"]]
        rows.append(
            [
                str(row["rank"]),
                row["move"] if has_previous else "–",
                *names,
                format_tokens(row["tokens"]),
                format_pct(row["wow_pct"]) if has_previous else "–",
                _share(row["share_pct"]),
            ]
        )
    n = len(header)
    return head + "\n\n" + table(header, rows, right={0, n - 3, n - 2, n - 1})


def render_history(series: Mapping[str, Any]) -> str:
    """A history dict from :func:`streams.store.queries.history` as a readable table."""
    title = f"{series['name']} ({series['member']})"
    if series["dimension"] == "model":
        title += f" · {series['vendor']} · {series['country']}"
    known = {w["week"] for w in series["weeks"]}
    rows = []
    previous: str | None = None
    for week in series["weeks"]:
        tokens = week["tokens"]
        if not tokens:
            wow = "–"
        elif week["wow_pct"] is not None:
            wow = format_pct(week["wow_pct"])
        else:
            # "new" only when the week before is known to have had no traffic.
            wow = "new" if previous in known and previous is not None else "–"
        rank = f"#{week['rank']}" if week["rank"] is not None else "–"
        rows.append([week["week"], format_tokens(tokens), wow, rank, _share(week["share_pct"])])
        previous = week["week"]
    header = ["week", "tokens", "WoW", "rank", "share"]
    return title + "\n\n" + table(header, rows, right={1, 2, 3, 4})


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Fixed-width columns, two spaces apart; columns in ``right`` are right-aligned."""
    every = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[c]) for r in every) for c in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.rjust(widths[c]) if c in right else cell.ljust(widths[c])
            for c, cell in enumerate(row)
        ).rstrip()
        for row in every
    )


def _share(pct: float | None) -> str:
    return "–" if pct is None else f"{pct:.1f}%"


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


# watch --------------------------------------------------------------------------------------
class EventTail:
    """Follows the rankings and alerts topics without a consumer group (nothing is committed).

    After :meth:`start` returns, every event published later is delivered: the start offsets
    are fixed explicitly instead of through a lazy offset reset. ``backlog`` also delivers up
    to that many of the latest records of each partition; a followed topic created after the
    start is read from its beginning.
    """

    def __init__(self, settings: Settings, *, from_beginning: bool = False, backlog: int = 0):
        self.settings = settings
        self.topics = (settings.rankings_topic, settings.alerts_topic)
        self.from_beginning = from_beginning
        self.backlog = backlog
        self._consumer: AIOKafkaConsumer | None = None
        self._assigned: set[TopicPartition] = set()
        self._checked_at = 0.0

    async def __aenter__(self) -> EventTail:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect and fix the start offsets."""
        self._consumer = AIOKafkaConsumer(
            **self.settings.kafka_client_options(), group_id=None, enable_auto_commit=False
        )
        await self._consumer.start()
        await self._assign(initial=True)

    async def stop(self) -> None:
        """Disconnect."""
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def next_batch(self, timeout_ms: int = 1000) -> list[dict[str, Any]]:
        """The events that arrived within ``timeout_ms``, oldest first (maybe none)."""
        consumer = self._consumer
        assert consumer is not None, "start() first"
        if len(self._topics_assigned()) < len(self.topics):
            if time.monotonic() - self._checked_at > TOPIC_RECHECK_S:
                await self._assign(initial=False)
            if not self._assigned:
                await asyncio.sleep(timeout_ms / 1000)
                return []
        batches = await consumer.getmany(timeout_ms=timeout_ms)
        records = [r for chunk in batches.values() for r in chunk]
        # Chronological across partitions; on a tie a ranking change precedes the alerts
        # the ranker raised in the same pass.
        records.sort(key=lambda r: (r.timestamp, r.topic != self.topics[0], r.partition, r.offset))
        events = []
        for record in records:
            try:
                event = orjson.loads(record.value)
            except orjson.JSONDecodeError:
                continue  # not ours to judge; a feed shows only what it can read
            if isinstance(event, dict):
                events.append(event)
        return events

    def _topics_assigned(self) -> set[str]:
        return {tp.topic for tp in self._assigned}

    async def _assign(self, *, initial: bool) -> None:
        consumer = self._consumer
        assert consumer is not None
        self._checked_at = time.monotonic()
        # The public topics() call discards the partition counts it fetched.
        cluster = await consumer._client.fetch_all_metadata()
        wanted = {
            TopicPartition(topic, p)
            for topic in self.topics
            for p in cluster.partitions_for_topic(topic) or ()
        }
        new = sorted(wanted - self._assigned)
        if not new:
            return
        kept = {tp: await consumer.position(tp) for tp in self._assigned}
        consumer.assign(sorted(wanted))
        for tp, offset in kept.items():
            consumer.seek(tp, offset)
        begin = await consumer.beginning_offsets(new)
        end = await consumer.end_offsets(new)
        for tp in new:
            if not initial or self.from_beginning:
                consumer.seek(tp, begin[tp])
            else:
                consumer.seek(tp, max(begin[tp], end[tp] - self.backlog))
        self._assigned = wanted


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
                raw = await self.client.hget(self.keys.member(*key), "name")
            except RedisError:
                raw = None  # names are a nicety; the feed goes on with ids
            self._names[key] = (raw.decode() if isinstance(raw, bytes) else raw) or member
        return self._names[key]


_ARROWS = {"new_leader": "★", "entered": "↑", "moved_up": "↑", "moved_down": "↓", "dropped": "↓"}


def describe_event(event: Mapping[str, Any], name: str | None = None) -> str:
    """One readable line for a ranking change or an alert.

    ``2026-W47 model    ↑ DeepSeek-V4-Flash moved up to #1 (was #2)  3.43T``
    """
    week = event.get("week", "?")
    if event.get("type") == "alert":
        return f"{week} alert    ! {event.get('message', event.get('kind'))}"
    if event.get("type") != "ranking_change":
        return f"{week} {event.get('type', 'event')}  {orjson.dumps(event).decode()}"
    kind = event.get("kind", "")
    who = name or str(event.get("member"))
    old, new = event.get("old_rank"), event.get("new_rank")
    was = f" (was #{old})" if old is not None else ""
    text = {
        "new_leader": f"{who} is the new #1{was or ' (new)'}",
        "entered": f"{who} entered at #{new}{was}",
        "moved_up": f"{who} moved up to #{new}{was}",
        "moved_down": f"{who} moved down to #{new}{was}",
        "dropped": f"{who} dropped out of the top{was}",
    }.get(kind, f"{who} {kind}")
    tokens = event.get("tokens")
    line = f"{week} {event.get('dimension', ''):<8} {_ARROWS.get(kind, '·')} {text}"
    if isinstance(tokens, int):
        line += f"  {format_tokens(tokens)}"
    return line + ("  [final]" if event.get("phase") == "final" else "")


def run_watch(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler: print ranking changes and alerts as they are published."""
    # "watch" has no --json flag of its own yet; honour one if the parser grows it.
    as_json = bool(getattr(args, "json", False))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_watch(settings, args.from_beginning, args.limit, as_json))
    return 0


async def _watch(settings: Settings, from_beginning: bool, limit: int, as_json: bool) -> None:
    client = connect(settings)
    namer = EventNamer(client, RedisKeys(settings.redis_prefix))
    shown = 0
    try:
        async with EventTail(settings, from_beginning=from_beginning) as tail:
            where = "the beginning" if from_beginning else "now"
            print(
                f"following {', '.join(tail.topics)} from {where} (Ctrl-C to stop)",
                file=sys.stderr,
                flush=True,
            )
            while not limit or shown < limit:
                for event in await tail.next_batch():
                    if as_json:
                        sys.stdout.write(orjson.dumps(event).decode() + "\n")
                    else:
                        print(describe_event(event, await namer.name(event)))
                    sys.stdout.flush()
                    shown += 1
                    if limit and shown >= limit:
                        break
    finally:
        await client.aclose()
