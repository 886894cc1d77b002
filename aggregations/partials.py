"""Stage 1 of the pipeline as pure code: cumulative partial sums per offset block.

The shell feeds every record of one usage partition, in offset order, to a
:class:`BlockAccumulator`; it asks for :meth:`BlockAccumulator.drain` on each flush and
routes the partials to partition :func:`partition_for` of the partials topic.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from aggregations.catalog import ModelInfo
from aggregations.events import CountedFields
from aggregations.prices import PriceBook
from aggregations.totals import (
    CALLS,
    COMPLETION,
    COST,
    LATE,
    NO_APP,
    PROMPT,
    TOKENS,
    TOTAL_MEMBER,
    UNPRICED,
    Partial,
)
from aggregations.weeks import DAY_MS, day_id, week_end_ms, week_id


def partition_for(key: str, partitions: int) -> int:
    """Stable partition of a table key (crc32, the same in every process and language)."""
    return zlib.crc32(key.encode()) % partitions


def block_of(offset: int, block_size: int) -> int:
    """The offset block an offset belongs to."""
    return offset // block_size


class _DayCache:
    """Week and day ids by day number: the hot loop must not format dates per event."""

    __slots__ = ("_ids", "ends")

    def __init__(self) -> None:
        self._ids: dict[int, tuple[str, str, int]] = {}
        #: Week end (ms) by day number, for add_many's late check of an event out of order.
        self.ends: dict[int, int] = {}

    def lookup(self, ts_ms: int) -> tuple[str, str, int]:
        """(week id, day id, week end ms) of an event time."""
        day_number = ts_ms // DAY_MS
        found = self._ids.get(day_number)
        if found is None:
            week = week_id(ts_ms)
            found = (week, day_id(ts_ms), week_end_ms(week))
            self._ids[day_number] = found
        return found


#: (day number, model, vendor, country) or (day number, app): see BlockAccumulator.
FineKey = tuple[int, str, str, str] | tuple[int, str]
_MAX_TS = 7  # fine counts carry the largest event time after the seven counts
# Model buckets then carry the model's prices of their day (integer micro-dollars per
# million tokens; _IN is -1 when the model has no price that day), looked up once per
# bucket: the hot loop reads them from the bucket it already holds.
_IN, _OUT, _CACHED = 8, 9, 10
_NO_PRICE = (-1, 0, 0)
# add() writes these positions as literals (5, 6, 8, 9, 10), which cost less per event than
# global names; they must stay what totals and the layout above say.
if (COST, UNPRICED, _IN, _OUT, _CACHED) != (5, 6, 8, 9, 10):  # pragma: no cover
    raise ImportError("aggregations.partials: bucket positions out of step with totals")
#: A block with no price book prices nothing: every token is unpriced.
_NO_PRICES = PriceBook()


class BlockAccumulator:
    """Cumulative sums of the current offset block of one usage partition.

    Per event two buckets are touched, one keyed by (day, model, vendor, country), one by
    (day, app); the table keys (model, country, vendor and total of the week from the first,
    app from the second) are derived from those buckets when the shell drains, which costs
    per distinct bucket rather than per event. The app has a bucket of its own rather than a
    fifth part of the first key: a block's distinct buckets then grow with models plus apps,
    not models times apps. Measured (add and a drain every 20,000 events, 60 models): 1.2 µs
    an event without apps, 1.7 with one app; with 25 apps 2.1 instead of 7.0 for the
    five-part key, with 500 apps 6.7 instead of 21.8. An event without an app counts for the
    app :data:`~aggregations.totals.NO_APP`, so a week's app keys add up to its total.

    Cost: each event's cost is computed here, once, by the rule of
    :func:`aggregations.prices.event_cost` (kept inline: it runs per event), with the prices
    ``prices`` gives for the model on the event's UTC day; the bucket of (day, model, ...)
    looks them up when it is created. An event without a price adds its tokens to
    ``unpriced_tokens`` instead.
    """

    def __init__(
        self,
        source: int,
        block: int,
        grace_ms: int,
        watermark_ms: int = 0,
        prices: PriceBook | None = None,
    ) -> None:
        self.source = source
        self.block = block
        self.grace_ms = grace_ms
        self.watermark_ms = watermark_ms
        #: The watermark never passes this (aggregations/clock.py): the shell sets it from
        #: its wall clock before each batch; the default leaves event time unbounded.
        self.watermark_cap_ms = 1 << 62
        self.end = -1
        self.prices = prices if prices is not None else _NO_PRICES
        self._fine: dict[FineKey, list[int]] = {}
        self._drained: dict[FineKey, list[int]] = {}
        self._dirty: set[FineKey] = set()
        self._names: dict[str, str] = {}
        self._sums: dict[str, dict[str, list[int]]] = {}
        self._max_ts: dict[str, int] = {}
        self._days = _DayCache()
        # Table keys and day id of each fine key: built once per block, not at every drain.
        self._table_keys: dict[FineKey, tuple[tuple[str, ...], str]] = {}
        self._strings: dict[str, str] = {}

    def add(
        self,
        offset: int,
        ts_ms: int,
        model: str,
        vendor: str,
        country: str,
        name: str,
        prompt_tokens: int,
        completion_tokens: int,
        calls: int,
        app: str = NO_APP,
        cached_tokens: int = 0,
    ) -> bool:
        """Fold one valid, first-seen event; returns True when it arrived after its week closed.

        An event is late when this partition's event-time watermark already passed the end
        of its week plus the grace period; it is still counted, and flagged.
        ``cached_tokens`` (part of ``prompt_tokens``) only changes the event's cost.
        """
        day_number = ts_ms // DAY_MS
        _, _, end_ms = self._days.lookup(ts_ms)
        late = self.watermark_ms >= end_ms + self.grace_ms
        if ts_ms > self.watermark_ms:
            cap = self.watermark_cap_ms
            self.watermark_ms = ts_ms if ts_ms <= cap else max(self.watermark_ms, cap)
        fine = self._fine
        dirty = self._dirty
        key: FineKey = (day_number, model, vendor, country)
        app_key: FineKey = (day_number, app)
        bucket = fine.get(key)
        if bucket is None:
            rates = self.prices.rates(model, day_number)
            bucket = fine[key] = [0, 0, 0, 0, 0, 0, 0, 0, *(rates or _NO_PRICE)]
            self._names[model] = name
        app_bucket = fine.get(app_key)
        if app_bucket is None:
            app_bucket = fine[app_key] = [0, 0, 0, 0, 0, 0, 0, 0]
        tokens = prompt_tokens + completion_tokens
        # Unrolled: this runs for every event of the stream.
        bucket[TOKENS] += tokens
        bucket[PROMPT] += prompt_tokens
        bucket[COMPLETION] += completion_tokens
        bucket[CALLS] += calls
        app_bucket[TOKENS] += tokens
        app_bucket[PROMPT] += prompt_tokens
        app_bucket[COMPLETION] += completion_tokens
        app_bucket[CALLS] += calls
        price_in = bucket[8]  # _IN (literal positions: see the check under _NO_PRICE)
        if price_in >= 0:
            # aggregations.prices.event_cost, inline: round half to even of scaled / 10^6.
            if cached_tokens:
                if cached_tokens > prompt_tokens:
                    cached_tokens = prompt_tokens
                scaled = (
                    (prompt_tokens - cached_tokens) * price_in
                    + cached_tokens * bucket[10]
                    + completion_tokens * bucket[9]
                )
            else:
                scaled = prompt_tokens * price_in + completion_tokens * bucket[9]
            # Half up, then back down on an exact half with an odd result: half to even.
            cost = (scaled + 500_000) // 1_000_000
            if cost & 1 and cost * 1_000_000 - scaled == 500_000:
                cost -= 1
            bucket[5] += cost  # COST
            app_bucket[5] += cost
        else:
            # The model bucket's unpriced tokens are its tokens (a bucket is one model and
            # day: priced or not as a whole), added when it drains; the app's are counted.
            app_bucket[6] += tokens  # UNPRICED
        if late:
            bucket[LATE] += 1
            app_bucket[LATE] += 1
        if ts_ms > bucket[_MAX_TS]:
            bucket[_MAX_TS] = ts_ms
        if ts_ms > app_bucket[_MAX_TS]:
            app_bucket[_MAX_TS] = ts_ms
        dirty.add(key)
        dirty.add(app_key)
        self.end = offset
        return late

    def _keys_of(self, fine: FineKey) -> tuple[tuple[str, ...], str]:
        """The table keys a fine bucket adds to, and its day id."""
        week, day, _ = self._days.lookup(fine[0] * DAY_MS)
        if len(fine) == 2:
            texts: tuple[str, ...] = (f"app:{week}:{fine[1]}",)
        else:
            _, model, vendor, country = fine
            texts = (
                f"model:{week}:{model}",
                f"country:{week}:{country}",
                f"vendor:{week}:{vendor}",
                f"total:{week}:{TOTAL_MEMBER}",
            )
        # One string object per table key, shared by all its fine buckets (a block can hold
        # tens of thousands of buckets).
        canonical = self._strings.setdefault
        return tuple(canonical(text, text) for text in texts), day

    def add_many(
        self, events: Iterable[CountedFields], end: int, describe: Callable[[str], ModelInfo]
    ) -> tuple[int, int]:
        """Fold a run of valid, first-seen events, in offset order, then :meth:`skip` to ``end``.

        The same as :meth:`add` for each event (vendor and country defaulting to the
        catalog's, the app to :data:`~aggregations.totals.NO_APP`, the name the catalog's),
        with the fine buckets touched once per distinct bucket of the run rather than once
        per event: the run is summed first into buckets keyed by the event's own fields.
        ``describe`` gives a model's catalog entry (called once per bucket of the run).
        Returns (late events, tokens) of the run.

        What stays per event, because it is not linear: the cost (rounded once per event,
        with the prices of the event's day, which its bucket carries) and the late flag
        (judged against the watermark at that event, which the run moves).
        """
        grace = self.grace_ms
        watermark = self.watermark_ms
        cap = self.watermark_cap_ms
        # An event is late when watermark >= week end + grace; its week ends after it, so
        # an event at or past watermark - grace is never late, and only the others (out of
        # order by more than the grace period) look their week's end up.
        horizon = watermark - grace
        ends = self._days.ends
        rates_of = self.prices.rates
        sums: dict[tuple[int, str, str | None, str | None, str | None], list[int]] = {}
        for _, ts_ms, model, prompt, completion, calls, vendor, country, app, cached in events:
            day_number = ts_ms // DAY_MS
            run_key = (day_number, model, vendor, country, app)
            bucket = sums.get(run_key)
            if bucket is None:
                bucket = sums[run_key] = [
                    0, 0, 0, 0, 0, 0, 0, 0, *(rates_of(model, day_number) or _NO_PRICE)
                ]  # fmt: skip
            bucket[0] += prompt + completion  # TOKENS (literal positions, as in add)
            bucket[1] += prompt  # PROMPT
            bucket[2] += completion  # COMPLETION
            bucket[3] += calls  # CALLS
            price_in = bucket[8]
            if price_in >= 0:
                # aggregations.prices.event_cost, inline, as in add().
                if cached:
                    if cached > prompt:
                        cached = prompt
                    scaled = (
                        (prompt - cached) * price_in + cached * bucket[10] + completion * bucket[9]
                    )
                else:
                    scaled = prompt * price_in + completion * bucket[9]
                cost = (scaled + 500_000) // 1_000_000
                if cost & 1 and cost * 1_000_000 - scaled == 500_000:
                    cost -= 1
                bucket[5] += cost  # COST
            if ts_ms < horizon:
                week_end = ends.get(day_number)
                if week_end is None:
                    week_end = ends[day_number] = self._days.lookup(ts_ms)[2]
                if horizon >= week_end:
                    bucket[4] += 1  # LATE
            if ts_ms > bucket[7]:  # _MAX_TS
                bucket[7] = ts_ms
            if ts_ms > watermark:
                watermark = ts_ms if ts_ms <= cap else max(watermark, cap)
                horizon = watermark - grace
        self.watermark_ms = watermark
        self.end = end
        fine = self._fine
        dirty = self._dirty
        late = tokens = 0
        for (day_number, model, vendor, country, app), run in sums.items():
            info = describe(model)
            key: FineKey = (day_number, model, vendor or info.vendor, country or info.country)
            app_key: FineKey = (day_number, app or NO_APP)
            bucket = fine.get(key)
            if bucket is None:
                # The run's bucket carries the prices of the same (model, day).
                bucket = fine[key] = [0, 0, 0, 0, 0, 0, 0, 0, run[8], run[9], run[10]]
                self._names[model] = info.name
            app_bucket = fine.get(app_key)
            if app_bucket is None:
                app_bucket = fine[app_key] = [0, 0, 0, 0, 0, 0, 0, 0]
            for target in (bucket, app_bucket):
                target[0] += run[0]
                target[1] += run[1]
                target[2] += run[2]
                target[3] += run[3]
                target[4] += run[4]
                target[5] += run[5]
                if run[7] > target[7]:
                    target[7] = run[7]
            if run[8] < 0:
                app_bucket[6] += run[0]  # UNPRICED: see add()
            dirty.add(key)
            dirty.add(app_key)
            late += run[4]
            tokens += run[0]
        return late, tokens

    def skip(self, offset: int) -> None:
        """Advance past a record that is not counted (invalid or duplicate)."""
        self.end = offset

    @property
    def dirty(self) -> bool:
        """True when some key changed since the last drain."""
        return bool(self._dirty)

    def drain(self) -> list[Partial]:
        """Partials of every key touched since the last drain, cumulative within the block."""
        touched: set[str] = set()
        meta: dict[str, tuple[str, str, str]] = {}
        sums = self._sums
        max_ts = self._max_ts
        drained = self._drained
        table_keys = self._table_keys
        for fine in self._dirty:
            now = self._fine[fine]
            before = drained.get(fine)
            drained[fine] = now[:]
            # Unrolled, as below: this runs for every bucket touched between two flushes.
            if before is not None:
                tokens, prompt, completion, calls, late, cost, unpriced = (
                    now[0] - before[0],
                    now[1] - before[1],
                    now[2] - before[2],
                    now[3] - before[3],
                    now[4] - before[4],
                    now[5] - before[5],
                    now[6] - before[6],
                )
            else:
                tokens, prompt, completion, calls, late, cost, unpriced = now[:7]
            if len(fine) == 4 and now[_IN] < 0:
                unpriced = tokens  # see add(): counted here for a model bucket without price
            newest = now[_MAX_TS]
            found = table_keys.get(fine)
            if found is None:
                found = table_keys[fine] = self._keys_of(fine)
            keys, day = found
            if len(fine) == 4:
                meta[keys[0]] = (self._names[fine[1]], fine[2], fine[3])
            for key in keys:
                days = sums.get(key)
                if days is None:
                    days = sums[key] = {}
                bucket = days.get(day)
                if bucket is None:
                    days[day] = [tokens, prompt, completion, calls, late, cost, unpriced]
                else:
                    bucket[0] += tokens
                    bucket[1] += prompt
                    bucket[2] += completion
                    bucket[3] += calls
                    bucket[4] += late
                    bucket[5] += cost
                    bucket[6] += unpriced
                if newest > max_ts.get(key, 0):
                    max_ts[key] = newest
            touched.update(keys)
        self._dirty.clear()
        return [
            Partial(
                key=key,
                source=self.source,
                block=self.block,
                end=self.end,
                days={d: c[:] for d, c in sums[key].items()},
                max_ts=max_ts[key],
                meta=meta.get(key),
            )
            for key in sorted(touched)
        ]


def group_by_partition(partials: Iterable[Partial], partitions: int) -> dict[int, list[Partial]]:
    """Partials grouped by their destination partition of the partials topic."""
    grouped: dict[int, list[Partial]] = {}
    for partial in partials:
        grouped.setdefault(partition_for(partial.key, partitions), []).append(partial)
    return grouped


@dataclass(frozen=True, slots=True)
class PartialsRecord:
    """One decoded partials record: a source position, its watermark and the partials.

    ``watermark_ms`` is the largest event time the source usage partition had read when the
    record was sent (``None`` for records of versions that did not send it). Every record
    of a flush carries it, and a flush sends a record to every partials partition (an empty
    one where no key routes), so each partials partition learns, in order with the data,
    how far each source got: once it folded that record, it holds all of the source's
    partial sums up to that event time.
    """

    source: int
    block: int
    end: int
    watermark_ms: int | None
    partials: list[Partial]


def encode_partials(
    partials: list[Partial],
    watermark_ms: int | None = None,
    *,
    position: tuple[int, int, int] | None = None,
) -> bytes:
    """One partials record: the shared source position, the source's watermark, the entries.

    ``position`` is ``(source, block, end)``; it defaults to the first partial's, and must
    be given for a record without partials (a watermark-only record).
    """
    if position is None:
        if not partials:
            raise ValueError("a record without partials needs its position")
        first = partials[0]
        position = (first.source, first.block, first.end)
    source, block, end = position
    record: dict[str, Any] = {
        "p": source,
        "b": block,
        "e": end,
        "items": [p.to_wire() for p in partials],
    }
    if watermark_ms is not None:
        record["w"] = watermark_ms
    return orjson.dumps(record)


#: The source of a tail probe: no usage partition has it.
TAIL_PROBE_SOURCE = -1


def tail_probe() -> bytes:
    """A partials record that carries nothing: no partials, no watermark.

    Stage 2 sends one to a partials partition whose end is ahead of its fold while no record
    of it arrives (``streams/worker/gap_guard.py``): the fold checks each record's offset
    against the one before, so the probe reveals records that never reached it, and folding
    the probe itself changes no table.
    """
    return encode_partials([], None, position=(TAIL_PROBE_SOURCE, 0, -1))


def flush_records(
    partials: list[Partial],
    partitions: int,
    *,
    position: tuple[int, int, int],
    watermark_ms: int,
) -> dict[int, bytes]:
    """The records one flush of a source sends: one for EVERY partials partition.

    A partition no key routes to gets an empty record carrying only the source's position
    and watermark: the ranker closes weeks on the slowest (partials partition, source)
    pair, so every partials partition must learn how far every source got, even when the
    source had nothing for it.
    """
    grouped = group_by_partition(partials, partitions)
    return {
        destination: encode_partials(grouped.get(destination, []), watermark_ms, position=position)
        for destination in range(partitions)
    }


def decode_record(raw: bytes) -> PartialsRecord:
    """Inverse of :func:`encode_partials`; a record without ``w`` has no watermark."""
    record: Mapping[str, Any] = orjson.loads(raw)
    source, block, end = int(record["p"]), int(record["b"]), int(record["e"])
    watermark = record.get("w")
    partials = [
        Partial(
            key=item[0],
            source=source,
            block=block,
            end=end,
            days=item[1],
            max_ts=int(item[2]),
            meta=(item[3][0], item[3][1], item[3][2]) if item[3] else None,
        )
        for item in record["items"]
    ]
    return PartialsRecord(
        source, block, end, None if watermark is None else int(watermark), partials
    )


def decode_partials(raw: bytes) -> list[Partial]:
    """The partials of a record encoded by :func:`encode_partials`."""
    return decode_record(raw).partials
