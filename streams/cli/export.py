"""``tokenboard export``: a week's whole leaderboard of one dimension as CSV, JSON or Parquet.

The rows are those of ``tokenboard top --json`` without a row limit, read from Redis by
:func:`streams.store.queries.leaderboard`; :mod:`aggregations.export` writes the bytes, as
for the read API's ``/v1/export/{dimension}``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from redis.exceptions import RedisError

from aggregations.export import check_format, encode_export
from streams.settings import Settings
from streams.store import queries
from streams.store.client import connect
from streams.store.keys import RedisKeys
from streams.store.state import WeekNotFound

__all__ = ["run_export"]


async def _export(settings: Settings, dimension: str, week: str, fmt: str) -> bytes:
    client = connect(settings)
    try:
        board = await queries.leaderboard(
            client, RedisKeys(settings.redis_prefix), dimension, week, None
        )
    finally:
        await client.aclose()
    return encode_export(board, check_format(fmt))


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler: write the export to ``--output`` (or standard output); exit 1 on failure."""
    try:
        data = asyncio.run(_export(settings, args.dim, args.week, args.format))
    except (WeekNotFound, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except RedisError as exc:
        print(f"error: Redis at {settings.redis_url}: {exc}", file=sys.stderr)
        return 1
    if args.output:
        Path(args.output).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return 0
