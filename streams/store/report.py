"""``tokenboard report``: the weekly report from the pipeline's state in Redis."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson
import redis.asyncio as aioredis

from aggregations.report import build_report, render_text
from streams.settings import Settings
from streams.store.client import connect
from streams.store.keys import RedisKeys
from streams.store.state import WeekNotFound, read_history, resolve_week


async def weekly_report(
    client: aioredis.Redis, keys: RedisKeys, week_spec: str, top_n: int
) -> dict[str, Any]:
    """The report of a week (``current``, ``last`` or ``2026-W47``) as the JSON contract."""
    week = await resolve_week(client, keys, week_spec)
    history, meta = await read_history(client, keys, week)
    return build_report(week, history, meta, top_n)


async def _report(settings: Settings, week_spec: str, top_n: int) -> dict[str, Any]:
    client = connect(settings)
    try:
        return await weekly_report(client, RedisKeys(settings.redis_prefix), week_spec, top_n)
    finally:
        await client.aclose()


def run_report(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler."""
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
