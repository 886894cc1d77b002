"""Stage 1's decoder for a whole fetched batch: :func:`decode_many`, msgspec-native, with
exactly :func:`aggregations.events.decode_fields`'s verdicts.

Why: stage 1 (``PreAggregator._fold_records``) called ``decode_fields`` once per Kafka
record, and that call (``orjson.loads`` building a dict, then a Python check of every field)
was the largest self time of a worker's profile (issue 14). Here msgspec decodes a run of
records, joined into one JSON array, into typed ``Struct`` instances in one native call: it
checks types, lengths and ranges on the way and builds no dict. What msgspec cannot express
(the clock and watermark bounds of ``ts``, the per-call token budget, country codes) is one
short Python pass per record.

The contract is equality: entry ``i`` of the result is what ``decode_fields(values[i] or
b"", ...)`` returns, or the :class:`InvalidEvent` it raises (same reason, detail and field).
That holds because the fast path only *accepts*; it never rejects on its own. Whatever it is
not certain about (a failed check, a CloudEvent, an unknown field, a float, a bool, a
string ``ts``, a null, whitespace around the record, bytes that do not parse) is handed to
``decode_fields`` for that one record, so every rejection is decode_fields' own. Why the
accepted values are orjson's:

- The Struct forbids unknown fields, so msgspec parses every byte of an accepted record as
  one of the known scalar fields: no skipped subtree can hide what orjson would reject
  (invalid UTF-8, lone surrogate escapes, NaN, deep nesting, big numbers).
- Both parsers reject invalid UTF-8, encoded or escaped lone surrogates, control characters
  in strings, leading zeros, ``+1``, NaN/Infinity, trailing commas and a byte order mark;
  both keep the *last* of duplicate keys; both decode ``\\u`` escapes in keys.
- msgspec's ``int`` refuses bools and floats (``1.0``, ``1e3``); integers beyond 64 bits,
  which orjson turns into floats, fail the ranges (at most ``MAX_COUNT`` or ``MAX_TS_MS``).
- ``Meta(max_length=...)`` counts code points, as ``len()`` does.
- Tighter bounds than decode_fields' are allowed (``reasoning_tokens`` and
  ``cached_tokens`` at most one call's budget): they only send more records to the slow
  path.

Record boundaries. A record is arbitrary bytes: ``{"a":1},{"b":2}`` is two array elements,
and a record with an unterminated string or bracket swallows its neighbours, so a batch
that parses does not prove that element ``i`` came from record ``i``. A second native pass
decodes the same array into ``msgspec.Raw`` spans; when the element count is the record
count and every span is exactly as long as its record, the elements tile the array (one
comma between each, no whitespace anywhere), so element ``i`` *is* record ``i``. Otherwise
the records before the first disagreement are kept only if each starts with ``{`` (then the
same argument holds for that prefix), and the rest goes on as after any failure.

Whitespace. JSON whitespace around a record breaks the length test, so the first time it
shows, every record's ends are stripped for msgspec (its value does not change);
``decode_fields`` is always given the record as it came.

Failures. When msgspec rejects a run, its error names the culprit: a ValidationError path
(``$[123].ts``) gives the element, a DecodeError's ``(byte N)`` is mapped through the
records' cumulative offsets, invalid UTF-8 is located with the codec. The culprit goes to
``decode_fields`` (after a DecodeError it is first tried alone with msgspec, and the record
before it too: an unclosed string makes the parser fail in the next record), the records
before it are decoded again as one run, and the batch goes on after it. Runs are at most
:data:`RUN_RECORDS` records, which bounds what one failure costs to re-parse; a run halves
after a failure and doubles after a success, so a batch of bad records costs one or two
msgspec calls per record rather than a quadratic number of re-parses, while one bad record
in 20,000 costs a few hundred records parsed twice.

Pure: no I/O, no clock (``now_ms`` and ``watermark_ms`` are passed in, as to
``decode_fields``).
"""

from __future__ import annotations

import re
import types
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from string import ascii_letters
from typing import Annotated, Final, cast

import msgspec
from msgspec import Meta
from msgspec.structs import astuple

from aggregations.events import (
    MAX_COUNT,
    MAX_TS_MS,
    MIN_TS_MS,
    CountedFields,
    InvalidEvent,
    Limits,
    decode_fields,
)

__all__ = ["RUN_RECORDS", "decode_many"]

#: Most records decoded by one msgspec call. A failure costs at most one run re-parsed, and
#: at this size the per-call overhead is far below a record's own cost.
RUN_RECORDS: Final = 256

#: What ``decode_many`` returns for each record.
Outcome = CountedFields | InvalidEvent

_NOT_A_CODE: Final = "not a country code"
# Every value of 'country' the fast path accepts, mapped to what decode_fields returns:
# absent, null and "" mean no country; two ASCII letters are upper-cased.
_COUNTRIES: Final[dict[str | None, str | None]] = {
    None: None,
    "": None,
    **{a + b: (a + b).upper() for a in ascii_letters for b in ascii_letters},
}
_VALIDATION_INDEX = re.compile(r"at `\$\[(\d+)\]")
_DECODE_BYTE = re.compile(r"\(byte (\d+)\)$")
_OPEN_BRACE = ord("{")
_JSON_SPACE: Final = b" \t\n\r"


@dataclass(frozen=True, slots=True)
class _Codec:
    """The msgspec decoders built from one :class:`Limits`."""

    run: msgspec.json.Decoder[list[msgspec.Struct]]
    one: msgspec.json.Decoder[msgspec.Struct]
    spans: msgspec.json.Decoder[list[msgspec.Raw]]


@lru_cache(maxsize=16)
def _codec(limits: Limits) -> _Codec:
    """The Struct type and its decoders for ``limits`` (built once per Limits value)."""
    max_id = max(0, limits.max_id_length)
    max_name = max(0, limits.max_name_length)
    # At most one call's budget, so that calls >= 1 makes them fit whatever calls is.
    extra_max = max(0, min(limits.max_tokens_per_call, MAX_COUNT))
    count = Annotated[int, Meta(ge=0, le=MAX_COUNT)]
    extra = Annotated[int, Meta(ge=0, le=extra_max)]
    optional_name = Annotated[str, Meta(max_length=max_name)] | None
    struct = msgspec.defstruct(
        "UsageFields",
        [
            ("event_id", Annotated[str, Meta(min_length=1, max_length=max_id)]),
            ("ts", Annotated[int, Meta(ge=MIN_TS_MS, le=MAX_TS_MS)]),
            ("model", Annotated[str, Meta(min_length=1, max_length=max_name)]),
            ("prompt_tokens", count),
            ("completion_tokens", count),
            # The first eight in CountedFields' order (app and cached_tokens, its ninth
            # and tenth, come later): _settle unpacks them by position.
            ("calls", Annotated[int, Meta(ge=1, le=MAX_COUNT)], 1),
            ("vendor", optional_name, None),
            ("country", Annotated[str, Meta(max_length=2)] | None, None),
            ("reasoning_tokens", extra, 0),
            ("cached_tokens", extra, 0),
            ("app", optional_name, None),
            ("region", optional_name, None),
        ],
        module=__name__,
        forbid_unknown_fields=True,
        gc=False,  # instances hold only str, int and None
    )
    return _Codec(
        run=msgspec.json.Decoder(types.GenericAlias(list, (struct,))),
        one=msgspec.json.Decoder(struct),
        spans=msgspec.json.Decoder(list[msgspec.Raw]),
    )


def decode_many(
    values: Sequence[bytes | None],
    *,
    now_ms: int,
    watermark_ms: int | None,
    limits: Limits,
) -> list[CountedFields | InvalidEvent]:
    """Decode a fetched batch of usage records: entry ``i`` is what
    ``decode_fields(values[i] or b"", now_ms=now_ms, watermark_ms=watermark_ms,
    limits=limits)`` returns, or the :class:`InvalidEvent` it raises.

    ``None`` (a record without a value) is decoded as ``b""``. Never raises
    :class:`InvalidEvent`; the order and length of the result are those of ``values``.
    One ``watermark_ms`` holds for the whole batch: a caller whose watermark moves while it
    folds the batch must judge retention against the moved one itself.
    """
    return _Batch(values, now_ms, watermark_ms, limits).decode()


class _Batch:
    """One call of :func:`decode_many`: the records, their outcomes, and the runs."""

    def __init__(
        self, values: Sequence[bytes | None], now_ms: int, watermark_ms: int | None, limits: Limits
    ) -> None:
        self.values = values
        self.now_ms = now_ms
        self.watermark_ms = watermark_ms
        self.limits = limits
        self.codec = _codec(limits)
        self.out: list[Outcome | None] = [None] * len(values)
        # The bounds decode_fields checks in Python, as one chained comparison each.
        self.lo = MIN_TS_MS if watermark_ms is None else watermark_ms - limits.retention_ms
        self.hi = now_ms + limits.max_future_ms
        self.per_call = limits.max_tokens_per_call
        # Filled by decode(): what the runs are made of (record index, bytes, length).
        self.rows: Sequence[int] = range(0)
        self.records: Sequence[bytes] = ()
        self.lengths: list[int] = []
        self.stripped = False

    def decode(self) -> list[Outcome]:
        """Every record's outcome, the batchable ones run by run."""
        self._select()
        total = len(self.records)
        # Records settled alone ahead of ``start``, nearest last: no run crosses them.
        settled_alone: list[int] = []
        # Runs double after a success and halve after a failure; ``cap`` limits the next
        # run only (to the records before a culprit, which parse).
        start, size, cap = 0, RUN_RECORDS, 0
        while True:
            while settled_alone and settled_alone[-1] == start:
                settled_alone.pop()
                start += 1
            if start >= total:
                break
            end = min(start + (cap or size), settled_alone[-1] if settled_alone else total)
            cap = 0
            settled, blamed, culprit = self._run(start, end)
            if settled == end:
                start, size = end, min(size * 2, RUN_RECORDS)
                continue
            settled_alone.append(blamed)
            if not culprit:
                culprit = self._single(blamed)
                if not culprit and blamed > settled:
                    # An unclosed string runs into the next record, where the parser fails.
                    blamed -= 1
                    culprit = self._single(blamed)
                    settled_alone.append(blamed)
            gap = blamed - settled
            start, size = settled, max(1, size // 2)
            if culprit:
                cap = gap
            elif gap:
                # The error surfaced after its cause (an unclosed string or bracket swallows
                # the records behind it): halve until the run stops short of the cause.
                size = max(1, min(size, gap // 2))
        return cast("list[Outcome]", self.out)

    def _select(self) -> None:
        """Settle what cannot be batched (no value, empty, oversized) through decode_fields
        and keep the rest, in order, as the records the runs are cut from."""
        values = self.values
        limit = self.limits.max_event_bytes
        try:
            lengths = list(map(len, cast("Sequence[bytes]", values)))
        except TypeError:  # a record without a value
            lengths = [0 if value is None else len(value) for value in values]
        if not lengths or (min(lengths) > 0 and max(lengths) <= limit):
            # The common case: every record is batchable, and none is None.
            self.rows, self.records = range(len(values)), cast("Sequence[bytes]", values)
            self.lengths = lengths
            return
        outcasts = [row for row, size in enumerate(lengths) if not 0 < size <= limit]
        records = cast("Sequence[bytes]", values)
        rows: list[int] = []
        kept: list[bytes] = []
        kept_lengths: list[int] = []
        previous = 0
        for row in [*outcasts, len(values)]:  # the stretches between outcasts, copied in C
            rows += range(previous, row)
            kept += records[previous:row]
            kept_lengths += lengths[previous:row]
            previous = row + 1
        for row in outcasts:
            self.out[row] = self._slow(values[row] or b"")
        self.rows, self.records, self.lengths = rows, kept, kept_lengths

    def _run(self, start: int, end: int) -> tuple[int, int, bool]:
        """Decode records ``[start, end)`` in one msgspec call and settle what it proves.

        Returns ``(settled, blamed, rejected)``: records ``[start, settled)`` are settled,
        and when ``settled < end`` record ``blamed >= settled`` is the one the failure points
        at; ``rejected`` when msgspec's error named it, and it is settled too.
        """
        if end - start == 1:
            self._single(start)
            return end, end, False
        records = self.records[start:end]
        parts = list(records)  # brackets on the end records: one copy of the run, not three
        parts[0] = b"[" + parts[0]
        parts[-1] = parts[-1] + b"]"
        joined = b",".join(parts)
        codec = self.codec
        try:
            decoded = codec.run.decode(joined)
        except msgspec.ValidationError as exc:
            match = _VALIDATION_INDEX.search(str(exc))
            if match is None:  # cannot happen: every element is a Struct
                return start, start, False
            # The elements before it parsed as Structs: this is the record that failed.
            blamed = start + min(int(match.group(1)), end - start - 1)
            self._reject(blamed)
            return start, blamed, True
        except msgspec.DecodeError as exc:
            return start, start + self._culprit(joined, start, end, str(exc)), False
        try:
            spans = list(map(len, codec.spans.decode(joined)))
        except msgspec.MsgspecError:  # cannot happen after the typed pass accepted it
            return start, start, False
        lengths = self.lengths[start:end]
        if spans == lengths and len(decoded) == len(lengths):
            self._settle(decoded, start)
            return end, end, False
        if not self.stripped and any(
            record and (record[0] in _JSON_SPACE or record[-1] in _JSON_SPACE) for record in records
        ):
            # Some producers end every record with a newline: strip JSON's whitespace off
            # the ends of every record (their values do not change), then try again.
            self._strip()
            return self._run(start, end)
        # Element i is record start + i while lengths agree and each record starts with '{'.
        agree = 0
        for span, size, record in zip(spans, lengths, records, strict=False):
            if span != size or record[0] != _OPEN_BRACE:
                break
            agree += 1
        agree = min(agree, end - start - 1)
        self._settle(decoded[:agree], start)
        return start + agree, start + agree, False

    def _strip(self) -> None:
        """Drop JSON whitespace around every record (``decode_fields`` still gets them as
        they came)."""
        self.records = [record.strip(_JSON_SPACE) for record in self.records]
        self.lengths = list(map(len, self.records))
        self.stripped = True

    def _culprit(self, joined: bytes, start: int, end: int, message: str) -> int:
        """The record (relative to ``start``) holding the byte a DecodeError points at."""
        match = _DECODE_BYTE.search(message)
        if match:
            position = int(match.group(1))
        else:  # "Invalid UTF-8 encoded string" gives no position; the codec does
            try:
                str(joined, "utf-8")
            except UnicodeDecodeError as bad:
                position = bad.start
            else:  # "Input data was truncated": the last record is the unclosed one
                position = len(joined)
        # Record i starts after '[' and i records with their commas.
        starts = list(accumulate((size + 1 for size in self.lengths[start:end]), initial=1))
        return max(0, min(bisect_right(starts, position) - 1, end - start - 1))

    def _single(self, index: int) -> bool:
        """Settle one record alone: msgspec on its own bytes, else decode_fields.

        True when msgspec rejects the record on its own, i.e. it is what broke a run.
        """
        try:
            decoded = self.codec.one.decode(self.records[index])
        except msgspec.MsgspecError:
            self._reject(index)
            return True
        self._settle([decoded], index)
        return False

    def _reject(self, index: int) -> None:
        """Settle one record msgspec rejected: decode_fields gives the verdict."""
        row = self.rows[index]
        self.out[row] = self._slow(cast(bytes, self.values[row]))

    def _settle(self, decoded: list[msgspec.Struct], start: int) -> None:
        """Record the counted fields of ``decoded`` (records ``start``...) that pass the checks
        msgspec cannot make; the others go through decode_fields."""
        out = self.out
        rows = self.rows[start : start + len(decoded)]
        lo, hi, per_call = self.lo, self.hi, self.per_call
        country_of, not_a_code = _COUNTRIES.get, _NOT_A_CODE
        # One C call and one unpacking per record, in _codec's field order (faster than
        # ten attribute reads); reasoning, cached and region are only checked by msgspec.
        for row, fields in zip(rows, map(astuple, decoded), strict=True):
            event_id, ts, model, prompt, completion, calls, vendor, country, _, cached, app, _ = (
                fields
            )
            code = country_of(country, not_a_code)
            if (
                lo <= ts <= hi
                and prompt + completion <= per_call * calls
                and code is not not_a_code
            ):
                out[row] = (
                    event_id, ts, model, prompt, completion, calls, vendor or None, code,
                    app or None, cached,
                )  # fmt: skip
            else:
                out[row] = self._slow(cast(bytes, self.values[row]))

    def _slow(self, raw: bytes) -> Outcome:
        """decode_fields' own verdict on one record."""
        try:
            return decode_fields(
                raw, now_ms=self.now_ms, watermark_ms=self.watermark_ms, limits=self.limits
            )
        except InvalidEvent as exc:
            # Its traceback would keep decode_fields' frames (and the record) alive.
            return exc.with_traceback(None)
