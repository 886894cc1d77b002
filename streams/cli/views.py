"""``tokenboard top``, ``history``, ``watch`` and ``dead-letters``: read from a terminal.

``top`` and ``history`` print the dicts of :mod:`streams.store.queries` as fixed-width tables (or
as JSON with ``--json``). ``watch`` follows the rankings and alerts topics with
:class:`~streams.sdk.tail.EventTail`, which the HTTP API's event stream uses as well, and
``dead-letters`` reads the dead-letter topic with :mod:`streams.sdk.dead_letters`, as the API's
``/v1/dead-letters`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from redis.exceptions import RedisError

from aggregations.errors import InvalidInput
from aggregations.prices import cost_text
from aggregations.report import format_pct, format_tokens, render_text
from aggregations.totals import NO_APP_NAME
from streams.cli.shutdown import close_loop
from streams.sdk.dead_letters import (
    DeadLetterPage,
    check_reason,
    format_time,
    parse_since,
    read_dead_letters,
)
from streams.sdk.tail import EventTail
from streams.settings import Settings
from streams.store import queries
from streams.store.client import connect
from streams.store.keys import RedisKeys
from streams.store.names import EventNamer
from streams.store.report import weekly_report
from streams.store.state import WeekNotFound


# top / history ------------------------------------------------------------------------------
def run_top(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler: the top N of one dimension and week."""
    result = _query(settings, "leaderboard", args.by, args.week, args.top, args.order)
    return _show(result, render_leaderboard, as_json=args.json)


def run_history(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler: the weekly series of one model, country or vendor."""
    if args.model:
        dimension, member = "model", args.model
    elif args.country:
        dimension, member = "country", args.country.upper()
    elif args.app:
        dimension, member = "app", args.app
    else:
        dimension, member = "vendor", args.vendor
    result = _query(settings, "history", dimension, member)
    return _show(result, render_history, as_json=args.json)


def _show(
    result: dict[str, Any] | None, render: Callable[[Mapping[str, Any]], str], *, as_json: bool
) -> int:
    """Print a query's result as a table (or JSON); exit 1 when the query failed."""
    if result is None:
        return 1
    if as_json:
        _print_json(result)
    else:
        print(render(result))
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


_PLURALS = {"model": "models", "country": "countries", "vendor": "vendors", "app": "apps"}


def render_leaderboard(board: Mapping[str, Any]) -> str:
    """A leaderboard dict from :func:`streams.store.queries.leaderboard` as a readable table.

    Costs read ``$12.3k``; ``≥$12.3k`` when some of the member's tokens had no price (a
    lower bound) and ``unknown`` when none had one, never ``$0``. A board by spend shows the
    spend first, its WoW and its share of the week's known spend.
    """
    dimension = board["dimension"]
    has_previous = board["has_previous"]
    by_spend = board.get("by") == "spend"
    plural = _PLURALS[dimension]
    if by_spend:
        head = (
            f"{board['week']} · top {len(board['rows'])} {plural} by spend of"
            f" {board['ranked']} with a price · spend"
            f" {cost_text(board['total_cost_micro_usd'], board['unpriced_tokens'])}"
        )
        if board["unpriced_tokens"]:
            head += (
                f" · {format_tokens(board['unpriced_tokens'])} tokens without a price"
                f" ({board['unpriced_members']} {plural} without any)"
            )
    else:
        head = (
            f"{board['week']} · top {len(board['rows'])} {plural} of {board['ranked']}"
            f" · total {format_tokens(board['total_tokens'])}"
        )
    if "unranked_tokens" in board:
        head += f" · {NO_APP_NAME} {format_tokens(board['unranked_tokens'])}, not ranked"
    if not has_previous:
        head += f" · no data for {board['previous_week']}"
    label = {"model": ["model", "vendor", "country"], "country": ["country", "name"]}
    amounts = ["spend", "tokens"] if by_spend else ["tokens", "spend"]
    header = ["#", "move", *label.get(dimension, [dimension]), *amounts, "WoW", "share"]
    rows = []
    for row in board["rows"]:
        if dimension == "model":
            names = [row["name"], row["vendor"], row["country"]]
        elif dimension == "country":
            names = [row["country"], row["name"]]
        else:
            names = [row[dimension]]
        spend = cost_text(row.get("cost_micro_usd"), row.get("unpriced_tokens", row["tokens"]))
        tokens = format_tokens(row["tokens"])
        wow = row["spend_wow_pct"] if by_spend else row["wow_pct"]
        share = row["spend_share_pct"] if by_spend else row["share_pct"]
        rows.append(
            [
                str(row["rank"]),
                row["move"] if has_previous else "–",
                *names,
                *([spend, tokens] if by_spend else [tokens, spend]),
                format_pct(wow) if has_previous else "–",
                _share(share),
            ]
        )
    n = len(header)
    return head + "\n\n" + table(header, rows, right={0, n - 4, n - 3, n - 2, n - 1})


def render_history(series: Mapping[str, Any]) -> str:
    """A history dict from :func:`streams.store.queries.history` as a readable table."""
    title = f"{series['name']} ({series[series['dimension']]})"
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
#: Seconds ``watch`` waits for its Kafka and Redis clients to close after Ctrl-C.
WATCH_CLOSE_S = 5.0


def run_watch(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler: print ranking changes and alerts as they are published.

    Ctrl-C ends it within a bound whatever its clients do: ``asyncio.run`` waits without
    limit for every task it cancels, and in two full test runs ``watch`` was still running
    30 s after SIGINT (the hanging task was not identified). Here the main task is cancelled
    on SIGINT, what is left gets ``WATCH_CLOSE_S`` to finish, and if something still runs
    the process exits anyway, its output flushed.
    """
    loop = asyncio.new_event_loop()
    main = loop.create_task(_watch(settings, args.from_beginning, args.limit, args.json))
    if threading.current_thread() is threading.main_thread():
        # Signals reach the main thread only (tests and tools also run the CLI in others).
        loop.add_signal_handler(signal.SIGINT, main.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
            loop.run_until_complete(main)
    finally:
        close_loop(loop, WATCH_CLOSE_S)
    return 0


async def _watch(settings: Settings, from_beginning: bool, limit: int, as_json: bool) -> None:
    client = connect(settings)
    namer = EventNamer(client, RedisKeys(settings.redis_prefix))
    shown = 0
    tail = EventTail(settings, from_beginning=from_beginning)
    try:
        await tail.start()
        where = "the beginning" if from_beginning else "now"
        print(
            f"following {', '.join(tail.topics)} from {where} (Ctrl-C to stop)",
            file=sys.stderr,
            flush=True,
        )
        while not limit or shown < limit:
            for event in await tail.next_batch():
                # What the API's live feed sends: the event, its display name and text.
                payload = await namer.payload(event)
                if as_json:
                    sys.stdout.write(orjson.dumps(payload).decode() + "\n")
                else:
                    print(payload["text"])
                sys.stdout.flush()
                shown += 1
                if limit and shown >= limit:
                    break
    finally:
        # Ctrl-C must end the command promptly: closing the clients is bounded, as a
        # loaded machine or a slow broker could hold a clean disconnect for long.
        for closing in (tail.stop(), client.aclose()):
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(closing, WATCH_CLOSE_S)


# report -------------------------------------------------------------------------------------
async def _report(settings: Settings, week_spec: str, top_n: int) -> dict[str, Any]:
    client = connect(settings)
    try:
        return await weekly_report(client, RedisKeys(settings.redis_prefix), week_spec, top_n)
    finally:
        await client.aclose()


def run_report(args: argparse.Namespace, settings: Settings) -> int:
    """``tokenboard report``: the weekly report as text, or as the JSON contract."""
    try:
        report = asyncio.run(_report(settings, args.week, args.top or settings.top_n))
    except (WeekNotFound, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(render_text(report))
    return 0


# dead-letters -------------------------------------------------------------------------------
def run_dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler: the newest rejected events, with reason, detail and source."""
    try:
        since_ms = parse_since(args.since, time.time_ns() // 1_000_000) if args.since else None
        reason = check_reason(args.reason)
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    page = asyncio.run(
        read_dead_letters(settings, since_ms=since_ms, reason=reason, limit=args.limit)
    )
    if args.json:
        for letter in page.letters:
            sys.stdout.write(orjson.dumps(letter.as_dict()).decode() + "\n")
    else:
        print(render_dead_letters(page))
    if not page.complete:
        print("warning: stopped reading before the topic's end; narrow --since", file=sys.stderr)
    return 0


def render_dead_letters(page: DeadLetterPage, detail_width: int = 72) -> str:
    """The dead letters of ``page`` as a table, newest last."""
    shown = len(page.letters)
    head = f"{page.topic} · {shown} of {page.matched} dead letters, newest last"
    if page.duplicates:
        repeated = "copy" if page.duplicates == 1 else "copies"
        head += f" · {page.duplicates} repeated {repeated} left out"
    if not shown:
        return head
    rows = [
        [
            format_time(letter.timestamp_ms)[:19] + "Z",
            letter.reason,
            letter.source,
            _cut(letter.detail, detail_width),
            letter.excerpt(),
        ]
        for letter in page.letters
    ]
    return head + "\n\n" + table(["time", "reason", "source", "detail", "value"], rows, set())


def _cut(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
