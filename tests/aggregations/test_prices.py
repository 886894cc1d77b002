"""The price catalog: parsing exact prices, dated entries, overrides, and the cost rule."""

from __future__ import annotations

import random
from datetime import date
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregations.prices import (
    PriceBook,
    PriceEntry,
    cost_text,
    event_cost,
    format_usd,
    known_cost,
    parse_usd,
)
from aggregations.weeks import DAY_MS


def day(text: str) -> int:
    """The day number (ts_ms // DAY_MS) of a date."""
    return (date.fromisoformat(text) - date(1970, 1, 1)).days


@pytest.mark.parametrize(
    ("text", "micro"),
    [
        ("0", 0),
        ("15", 15_000_000),
        ("0.27", 270_000),
        ("1.10", 1_100_000),
        ("0.000125", 125),
        ("123456789.999999", 123_456_789_999_999),
    ],
)
def test_parse_usd_is_exact(text: str, micro: int) -> None:
    """Decimal strings become integer micro-dollars without a float anywhere."""
    assert parse_usd(text) == micro


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0.27, "decimal string"),
        (1, "decimal string"),
        ("-1", "non-negative"),
        ("0.1234567", "at most 6 decimals"),
        ("1e3", "non-negative decimal"),
        (".5", "non-negative decimal"),
        ("01", "non-negative decimal"),
        ("", "non-negative decimal"),
        (" 1", "non-negative decimal"),
    ],
)
def test_parse_usd_refuses(value: object, message: str) -> None:
    """Numbers, negatives, more than six decimals and odd spellings are refused by name."""
    with pytest.raises(ValueError, match=message):
        parse_usd(value, "input")


def test_event_cost_rounds_half_to_even_once() -> None:
    """The rule of the module doc, including the cached part and cached > prompt."""
    rates = (500_000, 1_500_000, 250_000)  # $0.5, $1.5, $0.25 per million
    assert event_cost(1, 0, 0, rates) == 0  # 0.5 -> 0 (even)
    assert event_cost(3, 0, 0, rates) == 2  # 1.5 -> 2 (even)
    assert event_cost(5, 0, 0, rates) == 2  # 2.5 -> 2 (even)
    assert event_cost(4, 1, 2, rates) == 3  # 2 x 0.5 + 2 x 0.25 + 1.5
    assert event_cost(4, 0, 9, rates) == 1  # cached beyond the prompt counts as the prompt
    assert event_cost(10**15, 10**15, 0, (10**9, 10**9, 0)) == 2 * 10**18


@given(
    st.integers(0, 10**12),
    st.integers(0, 10**12),
    st.integers(0, 10**12),
    st.tuples(*[st.integers(0, 10**9)] * 3),
)
def test_event_cost_is_the_exact_rational_rounded_half_to_even(
    prompt: int, completion: int, cached: int, rates: tuple[int, int, int]
) -> None:
    """The integer rule equals the exact rational cost rounded half to even."""
    used = min(cached, prompt)
    exact = Fraction((prompt - used) * rates[0] + used * rates[2] + completion * rates[1], 10**6)
    assert event_cost(prompt, completion, cached, rates) == round(exact)


def test_sums_do_not_depend_on_order_or_split() -> None:
    """Costs rounded per event add up to the same integer however events are grouped."""
    rng = random.Random(7)
    rates = (270_000, 1_100_000, 70_000)
    events = [(rng.randrange(10**6), rng.randrange(10**5), rng.randrange(10**5))
              for _ in range(500)]  # fmt: skip
    costs = [event_cost(p, c, k, rates) for p, c, k in events]
    total = sum(costs)
    rng.shuffle(costs)
    parts = [sum(costs[i::7]) for i in range(7)]
    assert sum(parts) == total


BOOK = PriceBook.from_mapping(
    {
        "version": 1,
        "prices": [
            {"model": "a/x", "from": "2025-04-16", "input": "10", "output": "40",
             "cached_input": "2.50", "source": "https://example.com/pricing"},
            {"model": "a/x", "from": "2025-06-10", "input": "2", "output": "8",
             "cached_input": "0.50"},
            {"model": "b/y", "from": "2025-01-01", "input": "0.40", "output": "2"},
        ],
    }
)  # fmt: skip


def test_dated_entries_apply_until_the_next() -> None:
    """An entry applies from its day (UTC) until the next entry of its model; before the
    first one, and for a model without entries, there is no price."""
    assert BOOK.rates("a/x", day("2025-04-15")) is None
    assert BOOK.rates("a/x", day("2025-04-16")) == (10_000_000, 40_000_000, 2_500_000)
    assert BOOK.rates("a/x", day("2025-06-09")) == (10_000_000, 40_000_000, 2_500_000)
    assert BOOK.rates("a/x", day("2025-06-10")) == (2_000_000, 8_000_000, 500_000)
    assert BOOK.rates("a/x", day("2030-01-01")) == (2_000_000, 8_000_000, 500_000)
    assert BOOK.rates("c/z", day("2025-06-10")) is None
    assert BOOK.rates_at("a/x", day("2025-06-10") * DAY_MS - 1) == BOOK.rates(
        "a/x", day("2025-06-09")
    )


def test_cached_input_defaults_to_the_input_price() -> None:
    """A vendor without a cache discount: cached input costs the input price."""
    assert BOOK.rates("b/y", day("2025-02-01")) == (400_000, 2_000_000, 400_000)


def test_overrides_replace_every_entry_of_the_models_they_name() -> None:
    """An operator's file prices the models it names alone; the others keep their prices."""
    overrides = PriceBook([PriceEntry("a/x", date(2020, 1, 1), 1_000_000, 1_000_000, 1_000_000)])
    merged = BOOK.merged(overrides)
    assert merged.rates("a/x", day("2025-07-01")) == (1_000_000, 1_000_000, 1_000_000)
    assert merged.rates("b/y", day("2025-07-01")) == BOOK.rates("b/y", day("2025-07-01"))
    assert len(merged) == 2 and len(merged.entries("a/x")) == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be a JSON object"),
        ({"version": 2, "prices": []}, "unsupported price catalog version 2"),
        ({"prices": {}}, "needs a 'prices' list"),
        ({"prices": [7]}, r"price entry #0: must be an object"),
        ({"prices": [{"from": "2025-01-01", "input": "1", "output": "1"}]}, "'model'"),
        (
            {"prices": [{"model": "m", "from": "2025-1-1", "input": "1", "output": "1"}]},
            r"price entry #0 \('m'\): 'from' must be a date",
        ),
        (
            {"prices": [{"model": "m", "from": "2025-02-30", "input": "1", "output": "1"}]},
            "is not a date",
        ),
        (
            {"prices": [{"model": "m", "from": "2025-01-01", "input": 0.5, "output": "1"}]},
            r"price entry #0 \('m'\): 'input' must be a decimal string",
        ),
        (
            {"prices": [{"model": "m", "from": "2025-01-01", "input": "1", "output": "1",
                         "cached": "0.1"}]},
            r"unknown key\(s\) 'cached'",
        ),
        (
            {"prices": [{"model": "m", "from": "2025-01-01", "input": "1", "output": "1"},
                        {"model": "m", "from": "2025-01-01", "input": "2", "output": "2"}]},
            "model 'm' has two prices from 2025-01-01",
        ),
    ],
)  # fmt: skip
def test_invalid_catalogs_are_refused_by_name(data: object, message: str) -> None:
    """Each mistake names the entry and the field."""
    with pytest.raises(ValueError, match=message):
        PriceBook.from_mapping(data)


def test_known_cost_never_calls_unpriced_tokens_free() -> None:
    """All tokens unpriced: unknown (None); some: the cost as a lower bound; none: exact."""
    assert known_cost(0, 100, 100) is None
    assert known_cost(42, 10, 100) == 42
    assert known_cost(42, 0, 100) == 42
    assert known_cost(0, 0, 0) == 0
    assert cost_text(None, 100) == "unknown"
    assert cost_text(12_345_000_000, 10) == "≥$12.3k"
    assert cost_text(12_345_000_000, 0) == "$12.3k"


@pytest.mark.parametrize(
    ("micro", "text"),
    [
        (0, "$0"),
        (9_999, "<$0.01"),
        (10_000, "$0.01"),
        (420_000, "$0.42"),
        (995_000, "$1"),
        (1_500_000, "$1.5"),
        (9_995_000, "$10"),
        (12_345_678, "$12.3"),
        (123_456_789, "$123"),
        (999_500_000, "$1k"),
        (12_345_000_000, "$12.3k"),
        (4_560_000_000_000, "$4.56M"),
        (999_500_000_000_000, "$1B"),
        (-12_345_000_000, "-$12.3k"),
    ],
)
def test_format_usd(micro: int, text: str) -> None:
    """Three significant digits with a unit, rounded half up in integers."""
    assert format_usd(micro) == text
