"""Rank fields of the Redis member and total hashes: rank, previous rank, WoW, growth streak.

The ranker writes them for every week with data, but only when the week's data changed
(the fingerprint in ``ranked``) and at most once per :data:`RANK_REFRESH_S` while it keeps
changing. The pure half (fingerprint, completeness, field values, board diffs) is
module-level functions.

A tick costs what changed, not weeks x members. :class:`RankFields` keeps, per week, the
boards its member fields were last computed from (:class:`WeekBasis`), and remembers the
last board it read of every dimension and week (:class:`Board`). When a week is due, a
board whose size and sum still match what it read is not read again (a closed previous
week is never re-read while the current week changes), and only the members whose rank,
tokens, previous rank or previous tokens moved are written. The basis is trusted only while
``ranked`` still holds the fingerprint this process recorded with it: after a Redis loss
(the mirror's resync clears ``ranked``), retention, another leader's ranking of newer data,
a failed write or a rebalance (:meth:`RankFields.forget`), the week's fields are written
whole again. Fields another writer computed from data read between two of ours are those
of a member that did not move between them: counts only grow, so a member's rank and
tokens that are the same at both ends were the same in between.
"""

from __future__ import annotations

import hashlib
import sys
import time
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress
from operator import eq, itemgetter, ne
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from aggregations.growth import growth_streak, wow_pct
from aggregations.rankings import Ranked
from aggregations.totals import RANKED_DIMENSIONS, UNRANKED_MEMBERS
from aggregations.weeks import previous_week
from streams.store.keys import RedisKeys

__all__ = [
    "MEMBER_FIELDS",
    "PIPELINE_CHUNK",
    "RANK_REFRESH_S",
    "Board",
    "RankFields",
    "WeekBasis",
    "adds_up",
    "board_of",
    "board_totals",
    "changed_members",
    "changed_positions",
    "encode_value",
    "fingerprint",
    "member_fields",
    "member_values",
    "rank_due",
    "top_of",
    "total_fields",
]

RANK_REFRESH_S = 5.0
#: Member hashes per write-script call: one call blocks Redis for a few ms at this size.
PIPELINE_CHUNK = 2000

#: A hash's rank fields and their values, as written to Redis ("" for none).
Fields = dict[FieldT, EncodableT]

#: The rank fields of a member hash, in the order of :func:`member_values`.
MEMBER_FIELDS = ("rank", "prev_rank", "prev_tokens", "wow_pct")
# Writes the rank fields of a batch of member hashes in one call: through redis-py's
# pipeline each HSET costs ~25 µs of Python, which made a 100,000-member week take seconds.
# ARGV[1] is a JSON list of [hash key, value, ...], the values the strings redis-py would
# send; ARGV[2..] are the field names (MEMBER_FIELDS).
_WRITE_FIELDS = """
local items = cjson.decode(ARGV[1])
local f1, f2, f3, f4 = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
for i = 1, #items do
  local item = items[i]
  redis.call('HSET', item[1], f1, item[2], f2, item[3], f3, item[4], f4, item[5])
end
return #items
"""
# The first ARGV[1] members of each board in KEYS by the leaderboard rules (tokens
# descending, ties by member ascending), as flat member, score lists: what a ZRANGE of the
# whole board and a sort would give, read atomically per board without its tail.
# ZREVRANGE orders equal scores by member descending, so the members tied with the last
# score read are read again in ascending order, as many as fit.
_TOP = """
local n = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS do
  local top = redis.call('ZREVRANGE', KEYS[i], 0, n - 1, 'WITHSCORES')
  if #top == 2 * n then
    local last = tonumber(top[#top])
    local kept = {}
    local above = 0
    for j = 1, #top, 2 do
      if tonumber(top[j + 1]) ~= last then
        kept[#kept + 1] = top[j]
        kept[#kept + 1] = top[j + 1]
        above = above + 1
      end
    end
    local ties = redis.call(
      'ZRANGEBYSCORE', KEYS[i], top[#top], top[#top], 'WITHSCORES', 'LIMIT', 0, n - above
    )
    for j = 1, #ties do
      kept[#kept + 1] = ties[j]
    end
    top = kept
  end
  out[i] = top
end
return out
"""


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
    dimension, so a board whose members add up to less (or more) is being rewritten.

    For a dimension with an unranked member (the app of events without one), ``total`` is
    what its board holds when complete: :func:`board_totals`.
    """
    return sum(row.tokens for row in ranking) == (total or 0)


def board_totals(total: int | None, unranked: Mapping[str, int | None]) -> dict[str, int | None]:
    """Per ranked dimension, the tokens its board of a week holds once every snapshot write
    landed: the week's ``total``, less the tokens of the dimension's unranked member
    (``unranked``: dimension -> its tokens, None or absent while it has no hash). Every event
    counts once in every dimension, the unranked member included, so the board and that
    member add up to the total."""
    return {
        d: total if d not in UNRANKED_MEMBERS else (total or 0) - (unranked.get(d) or 0)
        for d in RANKED_DIMENSIONS
    }


def _int_or_none(value: str | None) -> int | None:
    return None if value is None else int(value)


def member_fields(row: Ranked, old: Ranked | None) -> Fields:
    """Rank fields of one member given its row of last week's board (``None``: not on it)."""
    pct = wow_pct(row.tokens, old.tokens if old else None)
    return {
        "rank": row.rank,
        "prev_rank": old.rank if old else "",
        "prev_tokens": old.tokens if old else "",
        "wow_pct": "" if pct is None else round(pct, 4),
    }


def member_values(
    rank: int, tokens: int, old_rank: int | None, old_tokens: int | None
) -> tuple[str, str, str, str]:
    """:func:`member_fields` of a member of rank ``rank`` with ``tokens``, on last week's
    board at ``old_rank`` with ``old_tokens`` (``None``: not on it), encoded as redis-py
    sends them (:func:`encode_value`), in the order of :data:`MEMBER_FIELDS`.

    The same values without building a row and a dict per member: a week's first ranking
    writes every member.
    """
    if old_rank is None or old_tokens is None:
        return str(rank), "", "", ""
    pct = wow_pct(tokens, old_tokens)
    return str(rank), str(old_rank), str(old_tokens), "" if pct is None else repr(round(pct, 4))


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


def encode_value(value: EncodableT) -> str:
    """A field value as the text redis-py sends for it (``repr`` of a number), so that a
    field written by the write script reads back exactly as one written by ``HSET``."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode()
    if isinstance(value, bool):
        raise TypeError("redis-py refuses bool field values")
    return value if isinstance(value, str) else repr(value)


@dataclass(frozen=True, slots=True, eq=False)
class Board:
    """One sorted set as the ranker read it: its ranked members (tokens > 0) in rank order.

    ``card`` is the set's size when read (members without tokens included, as ``ZCARD``
    counts them) and ``total`` the sum of the ranked members' tokens: with the week's total
    they tell whether the board changed since (see :meth:`still`).
    """

    members: Sequence[str]
    tokens: Sequence[int]
    card: int
    total: int

    def rows(self) -> list[Ranked]:
        """The board as :func:`aggregations.rankings.rank` ranks it."""
        rows = zip(self.members, self.tokens, strict=True)
        return [Ranked(i, m, t) for i, (m, t) in enumerate(rows, 1)]

    def adds_up(self, total: int | None) -> bool:
        """:func:`adds_up` of this board."""
        return self.total == (total or 0)

    def still(self, card: int, total: int | None) -> bool:
        """True when a board now of size ``card`` in a week of total ``total`` is this one.

        Only for a board that added up to the week's total: its members' tokens only grow,
        so the same size and the same sum leave no room for a change (the assumption
        :func:`fingerprint` makes too). A board that did not add up is read again.
        """
        return self.card == card and self.adds_up(total)

    def index(self) -> dict[str, int]:
        """Member -> position (rank - 1)."""
        return dict(zip(self.members, range(len(self.members)), strict=True))


def _pairs(raw: Sequence[Any]) -> tuple[list[str], list[float]]:
    """Members and scores of a ``ZRANGE ... WITHSCORES`` reply, RESP3 or RESP2."""
    if raw and isinstance(raw[0], list | tuple):
        # RESP3: [[member, score], ...] with scores already doubles.
        return list(map(itemgetter(0), raw)), list(map(float, map(itemgetter(1), raw)))
    return list(raw[0::2]), list(map(float, raw[1::2]))


def _token_array(tokens: list[int]) -> Sequence[int]:
    """Tokens in 8 bytes each: a week's boards stay in memory between ticks."""
    try:
        return array("q", tokens)
    except OverflowError:
        return tokens


def board_of(raw: Sequence[Any]) -> Board:
    """The :class:`Board` of a raw ``ZRANGE key 0 -1 WITHSCORES`` reply (ascending).

    The same rows as :func:`aggregations.rankings.rank` of ``{member: int(score)}``.
    """
    members, scores = _pairs(raw)
    card = len(scores)
    tokens = list(map(int, scores))
    # Ascending by score, so the members with tokens form a suffix.
    start = bisect_right(tokens, 0)
    members, scores, tokens = members[start:], scores[start:], tokens[start:]
    if not any(map(eq, tokens, tokens[1:])):
        members.reverse()
        tokens.reverse()
    elif all(map(float.is_integer, scores)):
        # Equal tokens are equal scores, which Redis orders by member ascending: a stable
        # sort by tokens alone keeps that order within them (reverse=True is stable too).
        order = sorted(range(len(tokens)), key=tokens.__getitem__, reverse=True)
        members = [members[i] for i in order]
        tokens = [tokens[i] for i in order]
    else:
        # Scores that int() makes equal tokens: only the rules' own sort is right.
        rows = sorted(zip(members, tokens, strict=True), key=lambda p: (-p[1], p[0]))
        members = [m for m, _ in rows]
        tokens = [t for _, t in rows]
    # One string per member name across weeks and dimensions: boards stay in memory.
    interned = list(map(sys.intern, members))
    return Board(interned, _token_array(tokens), card, sum(tokens))


def top_of(raw: Sequence[Any], n: int) -> list[Ranked]:
    """The first ``n`` rows by the ranking rules from the ``_TOP`` script's reply for one
    board (flat member, score; any order)."""
    members, scores = _pairs(raw)
    rows = sorted(
        ((m, int(s)) for m, s in zip(members, scores, strict=True) if int(s) > 0),
        key=lambda p: (-p[1], p[0]),
    )
    return [Ranked(i, m, t) for i, (m, t) in enumerate(rows[:n], 1)]


def changed_positions(old: Board, new: Board) -> Iterator[int]:
    """Positions of ``new`` whose member or tokens differ from ``old``'s at that position:
    the members whose rank or tokens moved, each at its new position."""
    if old is new:
        return iter(())
    common = min(len(old.members), len(new.members))
    moved: set[int] = set()
    if old.members != new.members:
        moved.update(compress(range(common), map(ne, old.members, new.members)))
    if old.tokens != new.tokens:
        moved.update(compress(range(common), map(ne, old.tokens, new.tokens)))
    moved.update(range(common, len(new.members)))
    return iter(sorted(moved))


def changed_members(old: Board, new: Board) -> set[str]:
    """Members whose row differs between ``old`` and ``new``, including those on only one
    of them (as the previous week, such a member's previous rank appears or goes)."""
    if old is new:
        return set()
    common = min(len(old.members), len(new.members))
    differ: set[int] = set()
    if old.members != new.members:
        differ.update(compress(range(common), map(ne, old.members, new.members)))
    if old.tokens != new.tokens:
        differ.update(compress(range(common), map(ne, old.tokens, new.tokens)))
    found = {new.members[i] for i in differ} | {old.members[i] for i in differ}
    found.update(new.members[common:])
    found.update(old.members[common:])
    return found


@dataclass(frozen=True, slots=True)
class WeekBasis:
    """What the member fields of one week in Redis were computed from, by this process."""

    #: the value recorded in ``ranked`` with them ("" for incomplete data)
    recorded: str
    #: per dimension, the week's board and the previous week's
    own: Mapping[str, Board]
    prev: Mapping[str, Board]


class RankFields:
    """Reads the boards and writes the rank fields of their members; remembers when each
    week was last ranked, and what from."""

    def __init__(self, client: aioredis.Redis, keys: RedisKeys) -> None:
        self.client = client
        self.keys = keys
        #: week -> monotonic time of its last ranking
        self._ranked_at: dict[str, float] = {}
        #: (dimension, week) -> the board as last read
        self._boards: dict[tuple[str, str], Board] = {}
        #: week -> what its member fields in Redis were computed from
        self._basis: dict[str, WeekBasis] = {}
        self._write_fields = client.register_script(_WRITE_FIELDS)
        self._top = client.register_script(_TOP)
        #: member hashes written by the last :meth:`update` (for the benchmark and logs)
        self.last_written = 0

    def forget(self) -> None:
        """Drop what this process knows of Redis: the next ranking of each week reads its
        boards and writes every member. Called when another leader may have written."""
        self._boards.clear()
        self._basis.clear()

    async def tops(self, week: str, n: int) -> dict[str, list[Ranked]]:
        """The top ``n`` of each ranked dimension's board of ``week``: the first ``n`` rows
        of its full ranking, without reading the rest of the board."""
        boards = [self.keys.leaderboard(d, week) for d in RANKED_DIMENSIONS]
        replies = cast(list[list[Any]], await self._top(keys=boards, args=[n]))
        return {d: top_of(raw, n) for d, raw in zip(RANKED_DIMENSIONS, replies, strict=True)}

    async def totals(self) -> dict[str, int]:
        """Total tokens of every week with data (weeks without a total are left out)."""
        weeks = cast(list[str], list(await self.client.zrange(self.keys.weeks, 0, -1)))
        pipe = self.client.pipeline(transaction=False)
        for week in weeks:
            pipe.hget(self.keys.total(week), "tokens")
        values = await pipe.execute()
        return {w: int(v) for w, v in zip(weeks, values, strict=True) if v is not None}

    async def update(self, weeks: Sequence[str], totals: dict[str, int]) -> None:
        """Rank fields of every week of ``weeks`` whose data changed (see :func:`rank_due`).

        One round trip tells which weeks are due, however many weeks there are.
        """
        self.last_written = 0
        wanted = sorted(set(weeks) | {previous_week(w) for w in weeks})
        pipe = self.client.pipeline(transaction=False)
        for week in wanted:
            for dimension in RANKED_DIMENSIONS:
                pipe.zcard(self.keys.leaderboard(dimension, week))
            for unranked_dimension, member in UNRANKED_MEMBERS.items():
                pipe.hget(self.keys.member(unranked_dimension, week, member), "tokens")
        if weeks:
            pipe.hmget(self.keys.ranked, list(weeks))
        replies = await pipe.execute()
        seen = cast(list[str | None], replies.pop()) if weeks else []
        width = len(RANKED_DIMENSIONS)
        step = width + len(UNRANKED_MEMBERS)
        cards = {w: replies[i * step : i * step + width] for i, w in enumerate(wanted)}
        # The unranked members' tokens, in UNRANKED_MEMBERS' order after each week's cards.
        unranked = {
            w: dict(zip(UNRANKED_MEMBERS, replies[i * step + width : (i + 1) * step], strict=True))
            for i, w in enumerate(wanted)
        }
        expected = {
            w: board_totals(totals.get(w), {d: _int_or_none(v) for d, v in unranked[w].items()})
            for w in wanted
        }
        self._forget_weeks(keep=set(wanted))
        for week, recorded in zip(weeks, seen, strict=True):
            current = fingerprint(cards[week], totals, week)
            now = time.monotonic()
            if not rank_due(recorded, current, self._ranked_at.get(week, 0.0), now):
                continue
            self._ranked_at[week] = now
            try:
                await self._write(week, recorded, current, cards, expected, totals)
            except BaseException:
                # Part of the week may be written: its basis no longer says what Redis holds.
                self._basis.pop(week, None)
                raise

    async def _write(
        self,
        week: str,
        recorded: str | None,
        current: str,
        cards: Mapping[str, Sequence[int]],
        expected: Mapping[str, Mapping[str, int | None]],
        totals: dict[str, int],
    ) -> None:
        """Rank, previous rank and WoW of the members whose fields moved, the total's growth
        fields, then the fingerprint. ``expected`` is each week's :func:`board_totals`."""
        prev = previous_week(week)
        own, previous = await self._read_boards(
            [(week, cards[week], expected[week]), (prev, cards[prev], expected[prev])]
        )
        complete = all(own[d].adds_up(expected[week][d]) for d in RANKED_DIMENSIONS) and all(
            previous[d].adds_up(expected[prev][d]) for d in RANKED_DIMENSIONS
        )
        basis = self._basis.get(week)
        # Only what this process wrote, still vouched for by the fingerprint it recorded.
        trusted = basis if basis is not None and basis.recorded == recorded else None
        items: list[list[str]] = []
        for dimension in RANKED_DIMENSIONS:
            items += self._member_items(
                dimension, week, own[dimension], previous[dimension], trusted
            )
        for chunk in range(0, len(items), PIPELINE_CHUNK):
            batch = orjson.dumps(items[chunk : chunk + PIPELINE_CHUNK])
            await self._write_fields(args=[batch, *MEMBER_FIELDS])
        self.last_written += len(items)
        # Boards that do not add up to their total are still being written (the writers of
        # other partitions, or a rewrite after Redis lost its state): the fingerprint may
        # already be final, so it is recorded only for complete data, and the ranks are
        # computed again (at most every RANK_REFRESH_S) until then.
        value = current if complete else ""
        write = self.client.pipeline(transaction=False)
        write.hset(self.keys.total(week), mapping=total_fields(totals, week))
        write.hset(self.keys.ranked, week, value)
        await write.execute()
        self._basis[week] = WeekBasis(value, own, previous)

    def _member_items(
        self, dimension: str, week: str, own: Board, prev: Board, basis: WeekBasis | None
    ) -> list[list[str]]:
        """Write-script items of the members of ``own`` whose fields differ from what
        ``basis`` wrote (every member without one)."""
        if basis is None:
            positions: Iterable[int] = range(len(own.members))
        else:
            moved = set(changed_positions(basis.own[dimension], own))
            prev_moved = changed_members(basis.prev[dimension], prev)
            if prev_moved:
                where = own.index()
                moved.update(where[m] for m in prev_moved if m in where)
            positions = sorted(moved)
        items: list[list[str]] = []
        before: dict[str, int] | None = None
        members, tokens, old_tokens = own.members, own.tokens, prev.tokens
        # A member's key is the week's prefix and its name (RedisKeys.member).
        prefix = self.keys.member(dimension, week, "")
        for i in positions:
            if before is None:
                before = prev.index()
            member = members[i]
            j = before.get(member)
            values = (
                member_values(i + 1, tokens[i], None, None)
                if j is None
                else member_values(i + 1, tokens[i], j + 1, old_tokens[j])
            )
            items.append([prefix + member, *values])
        return items

    async def _read_boards(
        self, weeks: Sequence[tuple[str, Sequence[int], Mapping[str, int | None]]]
    ) -> list[dict[str, Board]]:
        """The boards of each (week, its ZCARDs, its :func:`board_totals`): the one read
        before when it is still the board in Redis, else read now (all in one round trip)."""
        out: list[dict[str, Board]] = []
        missing: list[tuple[int, str, str]] = []
        for n, (week, cards, totals) in enumerate(weeks):
            boards: dict[str, Board] = {}
            for dimension, card in zip(RANKED_DIMENSIONS, cards, strict=True):
                known = self._boards.get((dimension, week))
                if known is not None and known.still(card, totals[dimension]):
                    boards[dimension] = known
                else:
                    missing.append((n, dimension, week))
            out.append(boards)
        if missing:
            pipe = self.client.pipeline(transaction=False)
            for _, dim, week in missing:
                # Not zrange(withscores=True): redis-py re-encodes each RESP3 score to text
                # and parses it again, ~10 µs a member.
                board_key = self.keys.leaderboard(dim, week)
                pipe.execute_command("ZRANGE", board_key, 0, -1, "WITHSCORES")
            for (n, dim, week), raw in zip(missing, await pipe.execute(), strict=True):
                out[n][dim] = self._boards[(dim, week)] = board_of(raw)
        return out

    def _forget_weeks(self, keep: set[str]) -> None:
        """Drop what is known of weeks no longer with data (retention deleted them)."""
        for board in [k for k in self._boards if k[1] not in keep]:
            del self._boards[board]
        for week in [w for w in self._basis if w not in keep]:
            del self._basis[week]
        for week in [w for w in self._ranked_at if w not in keep]:
            del self._ranked_at[week]
