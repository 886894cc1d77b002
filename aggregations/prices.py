"""The price catalog and the cost of an event, in exact integers.

Prices are dated entries per model id, in USD per million tokens for input, output and
cached input, written as decimal strings (``"0.27"``) and held as integer micro-dollars per
million tokens (USD/M x 10^6, so at most six decimals): no float ever touches a price.
An entry applies from its ``from`` day (UTC) until the next entry of the same model; before
a model's first entry, and for a model without entries, there is no price.

The shipped table is ``aggregations/data/prices.json`` (sources in
``aggregations/data/PRICES.md``); ``streams.prices`` loads it and the operator's override
file, whose entries replace every shipped entry of the models they name.

The cost rule (:func:`event_cost`), in micro-dollars, once per event, with the price of the
event's UTC day::

    round_half_even(((prompt - cached) * input + cached * cached_input
                     + completion * output) / 10^6)

computed in integers (``cached`` is at most ``prompt``: a larger value counts as ``prompt``).
Rounding once per event makes every sum of costs an integer that does not depend on the
order of the events or on how they were split over partitions, blocks and workers: the
weekly cost of a model is the sum of its events' costs, exactly, however it was counted.

A model without a price on an event's day is not counted as free: the event's tokens are
added to ``unpriced_tokens`` instead (:data:`aggregations.totals.UNPRICED`), and a member
whose tokens are all unpriced has an unknown cost (:func:`known_cost`).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from itertools import pairwise

from aggregations.catalog import catalog_entries
from aggregations.weeks import DAY_MS

__all__ = [
    "MICRO",
    "PriceBook",
    "PriceEntry",
    "Rates",
    "cost_text",
    "event_cost",
    "format_usd",
    "known_cost",
    "parse_usd",
]

#: Micro-dollars per dollar; also the tokens a per-million price is for.
MICRO = 1_000_000
_HALF = MICRO // 2
#: (input, output, cached input), integer micro-dollars per million tokens.
Rates = tuple[int, int, int]

_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,8})(?:\.([0-9]{1,6}))?")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_ENTRY_KEYS = frozenset({"model", "from", "input", "output", "cached_input", "source"})
#: (model, day number) answers kept by a book before it starts afresh: a stream of made-up
#: model names must not grow the cache without bound.
_CACHE_MAX = 200_000


def parse_usd(text: object, where: str = "price") -> int:
    """A decimal string of US dollars (``"0.27"``, ``"15"``, ``"0.000125"``) as integer
    micro-dollars; at most six decimals, never negative, never a float.

    Raises ValueError naming ``where`` otherwise (a JSON number included: ``0.1`` is already
    inexact once parsed, so prices are written as strings).
    """
    if not isinstance(text, str):
        raise ValueError(
            f'{where} must be a decimal string such as "0.27" (a JSON number would be '
            f"read as an inexact float), got {text!r}"
        )
    match = _DECIMAL.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{where} must be a non-negative decimal with at most 6 decimals, got {text!r}"
        )
    whole, fraction = match.group(1), match.group(2) or ""
    return int(whole) * MICRO + int(fraction.ljust(6, "0"))


def event_cost(prompt: int, completion: int, cached: int, rates: Rates) -> int:
    """The cost of one event in micro-dollars, rounded half to even (see the module doc).

    ``cached`` is the part of ``prompt`` read from the cache; more than ``prompt`` counts as
    ``prompt``.
    """
    price_in, price_out, price_cached = rates
    if cached > prompt:
        cached = prompt
    scaled = (prompt - cached) * price_in + cached * price_cached + completion * price_out
    cost, rest = divmod(scaled, MICRO)
    if rest > _HALF or (rest == _HALF and cost & 1):
        cost += 1
    return cost


def known_cost(cost: int, unpriced: int, tokens: int) -> int | None:
    """The cost to show for ``tokens`` of which ``unpriced`` had no price: None (unknown)
    when there are tokens and none had a price, else ``cost`` (a lower bound when some
    tokens were unpriced)."""
    if tokens > 0 and unpriced >= tokens:
        return None
    return cost


#: Units of :func:`format_usd`, in dollars, smallest first.
_USD_UNITS = ((1, ""), (10**3, "k"), (10**6, "M"), (10**9, "B"), (10**12, "T"))


def format_usd(micro: int) -> str:
    """Micro-dollars compactly, three significant digits, trailing zeros dropped: ``$0``,
    ``<$0.01``, ``$0.42``, ``$1.5``, ``$12.3``, ``$123``, ``$12.3k``, ``$4.56M``; rounded half
    up in integers (a value that rounds to 1000 of a unit is 1 of the next: ``$1M``)."""
    sign = "-" if micro < 0 else ""
    size = abs(micro)
    if size == 0:
        return "$0"
    if size < 10_000:
        return f"{sign}<$0.01"
    cents = (size + 5_000) // 10_000
    if cents < 100:
        return f"{sign}$0.{cents:02d}"
    for index, (unit, suffix) in enumerate(_USD_UNITS):
        unit_micro = unit * MICRO
        bigger = _USD_UNITS[index + 1][0] * MICRO if index + 1 < len(_USD_UNITS) else None
        if bigger is not None and size >= bigger:
            continue
        for decimals in (2, 1, 0):
            step = unit_micro // 10**decimals
            scaled = (size + step // 2) // step
            if scaled < 1000:
                whole, fraction = divmod(scaled, 10**decimals)
                text = f"{whole}.{fraction:0{decimals}d}".rstrip("0").rstrip(".")
                return f"{sign}${text}{suffix}"
        if bigger is not None:
            return f"{sign}$1{_USD_UNITS[index + 1][1]}"
        return f"{sign}${scaled}{suffix}"
    raise AssertionError("unreachable: the last unit always answers")


def cost_text(cost: int | None, unpriced: int, unknown: str = "unknown") -> str:
    """How a cost reads in text: ``unknown`` for None, ``≥$12.3k`` when some tokens were
    unpriced (the cost is a lower bound), else ``$12.3k``."""
    if cost is None:
        return unknown
    return ("≥" if unpriced > 0 else "") + format_usd(cost)


@dataclass(frozen=True, slots=True)
class PriceEntry:
    """One dated price of a model: USD per million tokens as integer micro-dollars."""

    model: str
    start: date
    input: int
    output: int
    cached_input: int
    source: str = ""

    @property
    def rates(self) -> Rates:
        """(input, output, cached input)."""
        return (self.input, self.output, self.cached_input)

    @property
    def start_day(self) -> int:
        """Days since 1970-01-01 of :attr:`start` (what ``ts_ms // DAY_MS`` gives)."""
        return self.start.toordinal() - _EPOCH_ORDINAL


def _parse_day(value: object, where: str) -> date:
    if not isinstance(value, str) or not _DAY.fullmatch(value):
        raise ValueError(f"{where}: 'from' must be a date such as \"2026-01-31\", got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{where}: 'from' {value!r} is not a date: {exc}") from None


def _parse_entry(index: int, entry: object) -> PriceEntry:
    if not isinstance(entry, Mapping):
        raise ValueError(f"price entry #{index}: must be an object, got {entry!r}")
    model = entry.get("model")
    where = f"price entry #{index} ({model!r})" if model is not None else f"price entry #{index}"
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"{where}: 'model' must be a non-empty string, got {model!r}")
    unknown = sorted(str(k) for k in entry if k not in _ENTRY_KEYS)
    if unknown:
        # A misspelt "cached_input" would otherwise silently price cached tokens as input.
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; an entry has "
            "model, from, input, output, cached_input (optional: the input price) and source"
        )
    start = _parse_day(entry.get("from"), where)
    price_in = parse_usd(entry.get("input"), f"{where}: 'input'")
    price_out = parse_usd(entry.get("output"), f"{where}: 'output'")
    cached = entry.get("cached_input")
    price_cached = price_in if cached is None else parse_usd(cached, f"{where}: 'cached_input'")
    source = entry.get("source", "")
    if not isinstance(source, str):
        raise ValueError(f"{where}: 'source' must be a string, got {source!r}")
    return PriceEntry(model, start, price_in, price_out, price_cached, source)


class PriceBook:
    """Dated prices by model id; :meth:`rates` answers for one model and UTC day.

    Immutable but for a cache of answers by (model, day number): stage 1 asks once per
    model and day of each offset block, not per event.
    """

    __slots__ = ("_cache", "_entries", "_starts")

    def __init__(self, entries: Iterable[PriceEntry] = ()) -> None:
        by_model: dict[str, list[PriceEntry]] = {}
        for entry in entries:
            by_model.setdefault(entry.model, []).append(entry)
        self._entries: dict[str, tuple[PriceEntry, ...]] = {}
        self._starts: dict[str, list[int]] = {}
        for model, found in by_model.items():
            found.sort(key=lambda e: e.start)
            for before, after in pairwise(found):
                if before.start == after.start:
                    raise ValueError(f"model {model!r} has two prices from {after.start}")
            self._entries[model] = tuple(found)
            self._starts[model] = [e.start_day for e in found]
        self._cache: dict[tuple[str, int], Rates | None] = {}

    @classmethod
    def from_mapping(cls, data: object) -> PriceBook:
        """Build from the JSON shape ``{"version": 1, "prices": [{model, from, input,
        output, cached_input, source}]}``; raises ValueError naming the first bad entry."""
        entries = catalog_entries(
            data, "price catalog", "prices", "{model, from, input, output, cached_input}"
        )
        return cls(_parse_entry(index, entry) for index, entry in enumerate(entries))

    def rates(self, model: str, day_number: int) -> Rates | None:
        """The (input, output, cached input) prices of ``model`` on UTC day ``day_number``
        (``ts_ms // DAY_MS``), or None when it has no price that day."""
        key = (model, day_number)
        cache = self._cache
        if key in cache:
            return cache[key]
        starts = self._starts.get(model)
        found: Rates | None = None
        if starts is not None:
            at = bisect_right(starts, day_number) - 1
            if at >= 0:
                found = self._entries[model][at].rates
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[key] = found
        return found

    def rates_at(self, model: str, ts_ms: int) -> Rates | None:
        """:meth:`rates` for the UTC day of an event time."""
        return self.rates(model, ts_ms // DAY_MS)

    def entries(self, model: str) -> tuple[PriceEntry, ...]:
        """The entries of ``model``, oldest first (empty when it has none)."""
        return self._entries.get(model, ())

    def merged(self, overrides: PriceBook) -> PriceBook:
        """A book where every model ``overrides`` names is priced by its entries only."""
        kept = [e for model, found in self._entries.items() if model not in overrides
                for e in found]  # fmt: skip
        return PriceBook([*kept, *overrides])

    def __contains__(self, model: object) -> bool:
        return model in self._entries

    def __len__(self) -> int:
        """Models with at least one price."""
        return len(self._entries)

    def __iter__(self) -> Iterator[PriceEntry]:
        """Every entry, by model id then date."""
        for model in sorted(self._entries):
            yield from self._entries[model]

    def __repr__(self) -> str:
        return f"<PriceBook of {len(self._entries)} models>"
