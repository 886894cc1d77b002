"""Loading the shipped model catalog and the operator's override file."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from aggregations.catalog import ModelInfo
from streams.worker.catalog import CatalogError, load_catalog, shipped_catalog


def write_override(path: Path, models: list[dict[str, str]]) -> str:
    """Write an override file with the shipped file's shape and return its path."""
    path.write_bytes(orjson.dumps({"version": 1, "models": models}))
    return str(path)


def test_without_override_returns_the_shipped_catalog() -> None:
    """No path (or an empty TOKENBOARD_CATALOG_PATH) gives the cached shipped catalog."""
    catalog = load_catalog()
    assert catalog is shipped_catalog()
    assert load_catalog("") is catalog
    assert catalog.get("deepseek/deepseek-v4-flash") == ModelInfo(
        "deepseek/deepseek-v4-flash", "DeepSeek-V4-Flash", "DeepSeek", "CN"
    )
    assert len(catalog) >= 136


def test_override_file_wins_and_adds(tmp_path: Path) -> None:
    """Override entries replace shipped ones with the same id and add new models."""
    path = write_override(
        tmp_path / "catalog.json",
        [
            {"id": "openai/gpt-4o", "name": "GPT-4o EU", "vendor": "Azure", "country": "IE"},
            {"id": "acme/foo", "name": "Foo", "vendor": "Acme", "country": "DE"},
        ],
    )
    catalog = load_catalog(path)
    shipped = shipped_catalog()
    assert len(catalog) == len(shipped) + 1
    assert catalog.get("openai/gpt-4o") == ModelInfo("openai/gpt-4o", "GPT-4o EU", "Azure", "IE")
    assert catalog.get("acme/foo") == ModelInfo("acme/foo", "Foo", "Acme", "DE")
    assert catalog.get("anthropic/claude-sonnet-4.5") == shipped.get("anthropic/claude-sonnet-4.5")
    assert shipped.get("openai/gpt-4o") == ModelInfo("openai/gpt-4o", "GPT-4o", "OpenAI", "US")


def test_missing_file_is_named(tmp_path: Path) -> None:
    """An unreadable override file raises CatalogError naming the file."""
    missing = tmp_path / "nope.json"
    with pytest.raises(CatalogError, match=f"cannot read model catalog {missing}"):
        load_catalog(str(missing))


def test_invalid_json_is_named(tmp_path: Path) -> None:
    """An override file that is not JSON raises CatalogError naming the file."""
    path = tmp_path / "broken.json"
    path.write_bytes(b'{"models": [')
    with pytest.raises(CatalogError, match=f"model catalog {path} is not valid JSON"):
        load_catalog(str(path))


def test_invalid_entry_is_named(tmp_path: Path) -> None:
    """A bad entry in the override file names both the file and the entry."""
    path = write_override(
        tmp_path / "bad.json",
        [{"id": "acme/foo", "name": "Foo", "vendor": "Acme", "country": "XYZ"}],
    )
    with pytest.raises(CatalogError, match=r"bad.json is invalid: catalog entry #0 \('acme/foo'\)"):
        load_catalog(path)
