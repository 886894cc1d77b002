"""Loading the shipped price catalog and the operator's override file."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from aggregations.weeks import week_start_ms
from streams.catalog import shipped_catalog
from streams.prices import PriceError, load_prices, shipped_prices

SEED = Path(__file__).resolve().parents[1] / "data" / "seed-2026-w47.json"
W47_DAY = week_start_ms("2026-W47") // 86_400_000


def write_override(path: Path, prices: list[dict[str, str]]) -> str:
    """Write an override file with the shipped file's shape and return its path."""
    path.write_bytes(orjson.dumps({"version": 1, "prices": prices}))
    return str(path)


def test_without_override_returns_the_shipped_prices() -> None:
    """No path (or an empty TOKENBOARD_PRICES_PATH) gives the cached shipped book."""
    book = load_prices()
    assert book is shipped_prices() and load_prices("") is book
    assert book.rates("openai/gpt-5.1", W47_DAY) == (1_250_000, 10_000_000, 125_000)


def test_every_shipped_price_names_a_catalog_model_and_a_source() -> None:
    """A typo in a model id would price nothing: every entry is a catalog model, and every
    entry says where its price comes from."""
    catalog = shipped_catalog()
    entries = list(shipped_prices())
    assert entries and all(e.model in catalog for e in entries)
    assert all(e.source.startswith("https://") for e in entries)


def test_the_seed_week_has_priced_and_unpriced_models() -> None:
    """The seed's US leaders have a price in 2026-W47; its Chinese models do not, so the
    seed exercises both (spend known, a lower bound, unknown)."""
    seed = json.loads(SEED.read_text())
    book = shipped_prices()
    priced = {m["id"] for m in seed["models"] if book.rates(m["id"], W47_DAY)}
    assert {"anthropic/claude-sonnet-4.6", "google/gemini-3-flash", "openai/gpt-5.1"} <= priced
    assert "deepseek/deepseek-v4-flash" not in priced
    assert {m["country"] for m in seed["models"] if m["id"] in priced} == {"US"}


def test_override_prices_the_models_it_names_alone(tmp_path: Path) -> None:
    """The override's entries replace every shipped entry of their model and add models."""
    path = write_override(
        tmp_path / "prices.json",
        [
            {"model": "openai/gpt-5.1", "from": "2026-01-01", "input": "1", "output": "8"},
            {"model": "deepseek/deepseek-v4-flash", "from": "2026-01-01", "input": "0.14",
             "output": "0.28", "cached_input": "0.014"},
        ],
    )  # fmt: skip
    book = load_prices(path)
    assert book.rates("openai/gpt-5.1", W47_DAY) == (1_000_000, 8_000_000, 1_000_000)
    assert book.rates("deepseek/deepseek-v4-flash", W47_DAY) == (140_000, 280_000, 14_000)
    assert book.rates("anthropic/claude-sonnet-4.6", W47_DAY) == shipped_prices().rates(
        "anthropic/claude-sonnet-4.6", W47_DAY
    )


def test_missing_file_is_named(tmp_path: Path) -> None:
    """An unreadable override file raises PriceError naming the file."""
    missing = tmp_path / "nope.json"
    with pytest.raises(PriceError, match=f"cannot read price catalog {missing}"):
        load_prices(str(missing))


def test_invalid_json_is_named(tmp_path: Path) -> None:
    """An override file that is not JSON raises PriceError naming the file."""
    path = tmp_path / "broken.json"
    path.write_bytes(b'{"prices": [')
    with pytest.raises(PriceError, match=f"price catalog {path} is not valid JSON"):
        load_prices(str(path))


def test_invalid_entry_is_named(tmp_path: Path) -> None:
    """A bad entry names both the file and the entry."""
    path = write_override(
        tmp_path / "bad.json", [{"model": "acme/foo", "from": "2026-01-01", "input": "x"}]
    )
    with pytest.raises(PriceError, match=r"bad.json is invalid: price entry #0 \('acme/foo'\)"):
        load_prices(path)
