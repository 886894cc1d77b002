"""Model catalog: the shipped data file, lookups, fallbacks for unknown models, overrides."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aggregations.catalog import UNKNOWN_COUNTRY, UNKNOWN_VENDOR, Catalog, ModelInfo
from aggregations.events import UsageEvent

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = json.loads((ROOT / "aggregations" / "data" / "catalog.json").read_text("utf-8"))
SEED = json.loads((ROOT / "tests" / "data" / "seed-2026-w47.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def shipped() -> Catalog:
    """The shipped catalog, parsed."""
    return Catalog.from_mapping(SHIPPED)


def small_catalog() -> Catalog:
    """Two known models."""
    return Catalog(
        [
            ModelInfo("openai/gpt-4o", "GPT-4o", "OpenAI", "US"),
            ModelInfo("mistralai/mistral-large", "Mistral Large", "Mistral AI", "FR"),
        ]
    )


def event(model: str = "openai/gpt-4o", **fields: str | None) -> UsageEvent:
    """A usage event for ``model`` with the given vendor/country/app/region."""
    return UsageEvent("evt-1", 1_794_787_200_000, model, 10, 5, **fields)  # type: ignore[arg-type]


#: The seed scenario's anonymous long tail ("FR Lab 6" / "FR Lab 6 Model"): stand-ins for the
#: models the reproduced report did not name. They are scenario data, not models.
PLACEHOLDER_ID = re.compile(r"[a-z]{2}-lab-[0-9]+/model-[0-9]+")
PLACEHOLDER_NAME = re.compile(r"[A-Z]{2} Lab [0-9]+( Model)?")


def is_placeholder(entry: dict[str, str]) -> bool:
    """An entry shaped like the seed's anonymous long tail (by id, name or vendor)."""
    return bool(
        PLACEHOLDER_ID.fullmatch(entry["id"])
        or PLACEHOLDER_NAME.fullmatch(entry["name"])
        or PLACEHOLDER_NAME.fullmatch(entry["vendor"])
    )


def test_every_named_seed_model_is_shipped_as_in_the_seed(shipped: Catalog) -> None:
    """Each of the 16 models the seed names is shipped with exactly the seed's name, vendor and
    country; its 60 anonymous long-tail models are not (their events carry their vendor and
    country, so the seed's country and vendor totals do not need them)."""
    assert len(SEED["models"]) == 76
    named = [m for m in SEED["models"] if not is_placeholder(m)]
    anonymous = [m for m in SEED["models"] if is_placeholder(m)]
    assert (len(named), len(anonymous)) == (16, 60)
    for model in named:
        expected = ModelInfo(model["id"], model["name"], model["vendor"], model["country"])
        assert shipped.get(model["id"]) == expected
    for model in anonymous:
        assert PLACEHOLDER_ID.fullmatch(model["id"]) and PLACEHOLDER_NAME.fullmatch(model["name"])
        assert model["id"] not in shipped


def test_the_shipped_catalog_lists_only_real_models() -> None:
    """No placeholder ("GB Lab 3", "JP Lab 6 Model", "gb-lab-3/model-3") next to real models."""
    assert [e["id"] for e in SHIPPED["models"] if is_placeholder(e)] == []


def test_shipped_file_shape() -> None:
    """The data file is version 1, sorted by id, without duplicates, and well stocked."""
    assert SHIPPED["version"] == 1
    ids = [entry["id"] for entry in SHIPPED["models"]]
    assert ids == sorted(ids)
    assert len(ids) == len(set(ids))
    assert len(ids) >= 136
    for entry in SHIPPED["models"]:
        assert set(entry) == {"id", "name", "vendor", "country"}
        assert "/" in entry["id"]


@pytest.mark.parametrize(
    ("model_id", "vendor", "country"),
    [
        ("openai/gpt-4o", "OpenAI", "US"),
        ("openai/gpt-5", "OpenAI", "US"),
        ("anthropic/claude-sonnet-4.5", "Anthropic", "US"),
        ("google/gemini-2.5-pro", "Google", "US"),
        ("meta-llama/llama-3.3-70b-instruct", "Meta", "US"),
        ("mistralai/mistral-large", "Mistral AI", "FR"),
        ("deepseek/deepseek-r1", "DeepSeek", "CN"),
        ("qwen/qwen3-235b-a22b", "Alibaba", "CN"),
        ("moonshotai/kimi-k2", "Moonshot AI", "CN"),
        ("z-ai/glm-4.6", "Zhipu AI", "CN"),
        ("minimax/minimax-m2", "MiniMax", "CN"),
        ("x-ai/grok-4", "xAI", "US"),
        ("cohere/command-a", "Cohere", "CA"),
        ("amazon/nova-pro-v1", "Amazon", "US"),
        ("microsoft/phi-4", "Microsoft", "US"),
        ("ai21/jamba-large-1.7", "AI21 Labs", "IL"),
    ],
)
def test_real_models_are_shipped(
    shipped: Catalog, model_id: str, vendor: str, country: str
) -> None:
    """Widely used models are in the catalog with their vendor and country of origin."""
    info = shipped.get(model_id)
    assert info is not None
    assert (info.vendor, info.country) == (vendor, country)


def test_vendor_always_has_one_country(shipped: Catalog) -> None:
    """A vendor's models share its country, so vendor and country boards agree."""
    countries: dict[str, set[str]] = {}
    for info in shipped:
        countries.setdefault(info.vendor, set()).add(info.country)
    assert {vendor: c for vendor, c in countries.items() if len(c) > 1} == {}


def test_lookups() -> None:
    """get, is_known, `in` and len agree on what the catalog holds."""
    catalog = small_catalog()
    assert catalog.get("openai/gpt-4o") == ModelInfo("openai/gpt-4o", "GPT-4o", "OpenAI", "US")
    assert catalog.get("acme/foo") is None
    assert catalog.is_known("openai/gpt-4o")
    assert not catalog.is_known("acme/foo")
    assert "mistralai/mistral-large" in catalog
    assert "acme/foo" not in catalog
    assert len(catalog) == 2
    assert [info.id for info in catalog] == ["mistralai/mistral-large", "openai/gpt-4o"]


def test_resolve_fills_missing_vendor_and_country() -> None:
    """An event without vendor and country gets the catalog's."""
    resolved = small_catalog().resolve(event(app="chat"))
    assert (resolved.vendor, resolved.country) == ("OpenAI", "US")
    assert resolved == event(vendor="OpenAI", country="US", app="chat")


def test_resolve_keeps_values_the_event_carries() -> None:
    """Values in the event win; only the missing one is filled."""
    catalog = small_catalog()
    only_vendor = catalog.resolve(event(vendor="Azure OpenAI"))
    assert (only_vendor.vendor, only_vendor.country) == ("Azure OpenAI", "US")
    only_country = catalog.resolve(event(country="IE"))
    assert (only_country.vendor, only_country.country) == ("OpenAI", "IE")
    complete = event(vendor="X", country="DE")
    assert catalog.resolve(complete) is complete


def test_resolve_unknown_model() -> None:
    """Unknown models keep counting: vendor from the id's prefix, country ZZ."""
    catalog = small_catalog()
    resolved = catalog.resolve(event("acme/foo-1"))
    assert (resolved.vendor, resolved.country) == ("acme", UNKNOWN_COUNTRY)
    no_prefix = catalog.resolve(event("my-finetune"))
    assert (no_prefix.vendor, no_prefix.country) == (UNKNOWN_VENDOR, "ZZ")
    given = catalog.resolve(event("acme/foo-1", vendor="Acme Corp"))
    assert (given.vendor, given.country) == ("Acme Corp", "ZZ")


def test_describe() -> None:
    """describe returns the catalog entry, or a stand-in named by the id for unknown models."""
    catalog = small_catalog()
    assert catalog.describe("openai/gpt-4o") is catalog.get("openai/gpt-4o")
    assert catalog.describe("acme/foo") == ModelInfo("acme/foo", "acme/foo", "acme", "ZZ")
    assert catalog.describe("/foo") == ModelInfo("/foo", "/foo", UNKNOWN_VENDOR, "ZZ")
    assert catalog.describe("acme/foo", vendor="Acme") == ModelInfo(
        "acme/foo", "acme/foo", "Acme", "ZZ"
    )
    assert catalog.describe("openai/gpt-4o", country="IE") == ModelInfo(
        "openai/gpt-4o", "GPT-4o", "OpenAI", "IE"
    )


def test_describer_answers_as_describe_and_builds_each_answer_once() -> None:
    """The describer gives describe's answer for a model id, known or not, and the same
    object each time it is asked again."""
    catalog = small_catalog()
    describe = catalog.describer()
    for model in ("openai/gpt-4o", "acme/foo", "/foo"):
        first = describe(model)
        assert first == catalog.describe(model)
        assert describe(model) is first


def test_merged_other_wins() -> None:
    """merged keeps both catalogs' models, the argument's entry winning on a shared id."""
    override = Catalog(
        [
            ModelInfo("openai/gpt-4o", "GPT-4o (EU)", "OpenAI Europe", "IE"),
            ModelInfo("acme/foo", "Foo", "Acme", "DE"),
        ]
    )
    merged = small_catalog().merged(override)
    assert len(merged) == 3
    assert merged.get("openai/gpt-4o") == ModelInfo(
        "openai/gpt-4o", "GPT-4o (EU)", "OpenAI Europe", "IE"
    )
    assert merged.get("acme/foo") == ModelInfo("acme/foo", "Foo", "Acme", "DE")
    assert merged.get("mistralai/mistral-large") is not None
    assert len(small_catalog()) == 2


def test_from_mapping_normalises_country_and_ignores_extra_keys() -> None:
    """Lowercase countries are upper-cased; keys such as a scenario's tokens are ignored."""
    catalog = Catalog.from_mapping(
        {"models": [{"id": "a/b", "name": "B", "vendor": "A", "country": "fr", "tokens": [1]}]}
    )
    assert catalog.get("a/b") == ModelInfo("a/b", "B", "A", "FR")


def entry(**overrides: object) -> dict[str, object]:
    """A valid catalog entry with some fields replaced."""
    return {"id": "acme/foo", "name": "Foo", "vendor": "Acme", "country": "US", **overrides}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be a JSON object"),
        ({}, "needs a 'models' list"),
        ({"models": {"acme/foo": {}}}, "needs a 'models' list"),
        ({"version": 2, "models": []}, "unsupported model catalog version 2"),
        ({"version": True, "models": []}, "unsupported model catalog version True"),
        ({"models": ["acme/foo"]}, r"entry #0: must be an object"),
        ({"models": [entry(id=None)]}, r"entry #0: 'id' must be a non-empty string"),
        ({"models": [entry(name="")]}, r"entry #0 \('acme/foo'\): 'name' must be a non-empty"),
        ({"models": [entry(), entry(vendor=7)]}, r"entry #1 \('acme/foo'\): 'vendor' must be"),
        ({"models": [entry(country="USA")]}, r"entry #0 \('acme/foo'\): 'country' must be an ISO"),
        ({"models": [entry(country="U5")]}, r"'country' must be an ISO 3166-1 alpha-2"),
        ({"models": [entry(), entry(name="Foo 2")]}, r"entry #1 \('acme/foo'\): duplicate"),
    ],
)
def test_invalid_catalog_rejected(data: object, message: str) -> None:
    """Malformed catalogs raise ValueError naming the bad entry."""
    with pytest.raises(ValueError, match=message):
        Catalog.from_mapping(data)  # type: ignore[arg-type]


def test_constructor_rejects_duplicates() -> None:
    """Building a catalog from ModelInfo objects also refuses duplicate ids."""
    info = ModelInfo("a/b", "B", "A", "US")
    with pytest.raises(ValueError, match="appears twice"):
        Catalog([info, info])
