"""Rank fields of the Redis member and total hashes: rank, previous rank, WoW, growth streak.

The ranker writes them for every week with data, but only when the week's data changed
(the fingerprint in ``ranked``) and at most once per :data:`RANK_REFRESH_S` while it keeps
changing. The pure half (fingerprint, completeness, field values) is module-level functions.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import cast

import orjson
import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from aggregations.growth import growth_streak, wow_pct
from aggregations.rankings import Ranked, rank
from aggregations.totals import RANKED_DIMENSIONS
from aggregations.weeks import previous_week
from streams.store.keys import RedisKeys

__all__ = [
    "PIPELINE_CHUNK",
    "RANK_REFRESH_S",
    "RankFields",
    "adds_up",
    "fingerprint",
    "member_fields",
    "rank_due",
    "total_fields",
]

RANK_REFRESH_S = 5.0
PIPELINE_CHUNK = 5000

#: A hash's rank fields and their values, as written to Redis ("" for none).
Fields = dict[FieldT, EncodableT]


def fingerprint(cards: Sequence[int], totals: dict[str, int], week: str) -> str:
    """Fingerprint of the data a week's rank fields are computed from: the sizes of its
    boards and the totals of it and every earlier week."""
    # The growth streak reads every earlier week's total, WoW the previous week's.
    earlier = [[w, t] for w, t in sorted(totals.items()) if w <= week]
    return hashlib.sha1(orjson.dumps([list(cards), earlier])).hexdigest()


def rank_due(seen: str | None, current: str, ranked_at: float, now: float) -> bool:
    """True when a week's rank fields are to be written again.

    ``seen`` is the fingerprint recorded for the week (``""`` after incomplete data),
    ``current`` the one of its data now, ``ranked_at`` the monotonic time of its last
    ranking (0.0 for never) and ``now`` the monotonic time.
    """
    if seen is not None and seen == current:
        return False
    # While a week keeps changing (a backfill), rewriting every member's rank each second
    # costs more than the freshness is worth: at most once per RANK_REFRESH_S.
    return not (seen is not None and now - ranked_at < RANK_REFRESH_S)


def adds_up(ranking: list[Ranked], total: int | None) -> bool:
    """True when a week's board holds all of the week's total: every event counts in every
    dimension, so a board whose members add up to less (or more) is being rewritten."""
    return sum(row.tokens for row in ranking) == (total or 0)


def member_fields(row: Ranked, old: Ranked | None) -> Fields:
    """Rank fields of one member given its row of last week's board (``None``: not on it)."""
    pct = wow_pct(row.tokens, old.tokens if old else None)
    return {
        "rank": row.rank,
        "prev_rank": old.rank if old else "",
        "prev_tokens": old.tokens if old else "",
        "wow_pct": "" if pct is None else round(pct, 4),
    }


def total_fields(totals: dict[str, int], week: str) -> Fields:
    """Growth fields of a week's total hash, from every week's total tokens."""
    total = totals.get(week, 0)
    previous_total = totals.get(previous_week(week))
    pct = wow_pct(total, previous_total)
    return {
        "growth_streak": growth_streak(totals, week),
        "prev_tokens": "" if previous_total is None else previous_total,
        "wow_pct": "" if pct is None else round(pct, 4),
    }


class RankFields:
    """Reads the boards and writes the rank fields of their members; remembers when each
    week was last ranked."""

    def __init__(self, client: aioredis.Redis, keys: RedisKeys) -> None:
        self.client = client
        self.keys = keys
        #: week -> monotonic time of its last ranking
        self._ranked_at: dict[str, float] = {}

    async def ranking(self, dimension: str, week: str) -> list[Ranked]:
        """The ranked board of one dimension and week, from its sorted set."""
        rows = await self.client.zrange(
            self.keys.leaderboard(dimension, week), 0, -1, withscores=True
        )
        # The client answers str (decode_responses): member, score pairs.
        return rank({m: int(s) for m, s in cast(list[tuple[str, float]], rows)})

    async def totals(self) -> dict[str, int]:
        """Total tokens of every week with data (weeks without a total are left out)."""
        weeks = cast(list[str], list(await self.client.zrange(self.keys.weeks, 0, -1)))
        pipe = self.client.pipeline(transaction=False)
        for week in weeks:
            pipe.hget(self.keys.total(week), "tokens")
        values = await pipe.execute()
        return {w: int(v) for w, v in zip(weeks, values, strict=True) if v is not None}

    async def write(self, week: str, totals: dict[str, int]) -> None:
        """Rank, previous rank and WoW of every member, when the week's data changed."""
        prev = previous_week(week)
        pipe = self.client.pipeline(transaction=False)
        for dimension in RANKED_DIMENSIONS:
            pipe.zcard(self.keys.leaderboard(dimension, week))
        pipe.hget(self.keys.ranked, week)
        *cards, seen = await pipe.execute()
        current = fingerprint(cards, totals, week)
        now = time.monotonic()
        if not rank_due(seen, current, self._ranked_at.get(week, 0.0), now):
            return
        self._ranked_at[week] = now
        complete = True
        write = self.client.pipeline(transaction=False)
        for dimension in RANKED_DIMENSIONS:
            rows = await self.ranking(dimension, week)
            previous = await self.ranking(dimension, prev)
            complete = (
                complete and adds_up(rows, totals.get(week)) and adds_up(previous, totals.get(prev))
            )
            before = {r.member: r for r in previous}
            for i, row in enumerate(rows):
                if i and i % PIPELINE_CHUNK == 0:
                    await write.execute()  # bounded memory with tens of thousands of members
                write.hset(
                    self.keys.member(dimension, week, row.member),
                    mapping=member_fields(row, before.get(row.member)),
                )
        write.hset(self.keys.total(week), mapping=total_fields(totals, week))
        # Boards that do not add up to their total are still being written (the writers of
        # other partitions, or a rewrite after Redis lost its state): the fingerprint may
        # already be final, so it is recorded only for complete data, and the ranks are
        # computed again (at most every RANK_REFRESH_S) until then.
        write.hset(self.keys.ranked, week, current if complete else "")
        await write.execute()
