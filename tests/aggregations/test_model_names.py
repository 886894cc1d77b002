"""Model names as gateways send them, resolved to catalog ids (aggregations.model_names)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aggregations.catalog import Catalog, ModelInfo
from aggregations.model_names import ALIASES, ModelResolver, normalised_forms

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = Catalog.from_mapping(
    json.loads((ROOT / "aggregations" / "data" / "catalog.json").read_text("utf-8"))
)


@pytest.fixture(scope="module")
def resolver() -> ModelResolver:
    """A resolver over the shipped catalog."""
    return ModelResolver(SHIPPED)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # The examples.
        ("gpt-4o-2024-08-06", "openai/gpt-4o"),
        ("openai/gpt-4o", "openai/gpt-4o"),
        ("claude-sonnet-4-5@20250929", "anthropic/claude-sonnet-4.5"),
        # Case, provider and routing prefixes.
        ("GPT-4o", "openai/gpt-4o"),
        ("azure/gpt-4o", "openai/gpt-4o"),
        ("models/gemini-2.5-flash", "google/gemini-2.5-flash"),
        ("vertex_ai/gemini-2.5-pro", "google/gemini-2.5-pro"),
        ("openrouter/anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4.5"),
        ("  openai/gpt-5.1 ", "openai/gpt-5.1"),
        # Date suffixes, -latest, dashed versions.
        ("gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"),
        ("o3-mini-2025-01-31", "openai/o3-mini"),
        ("gpt-4.1-2025-04-14", "openai/gpt-4.1"),
        ("claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4.5"),
        ("claude-3-5-sonnet-20241022", "anthropic/claude-3.5-sonnet"),
        ("claude-3-7-sonnet-latest", "anthropic/claude-3.7-sonnet"),
        ("claude-opus-4-1-20250805", "anthropic/claude-opus-4.1"),
        ("claude-haiku-4-5", "anthropic/claude-haiku-4.5"),
        ("grok-4-0709", "x-ai/grok-4"),
        ("mistral-large-latest", "mistralai/mistral-large"),
        ("glm-4-5-air", "z-ai/glm-4.5-air"),
        # Vertex AI and Bedrock ids.
        ("claude-3-5-haiku@20241022", "anthropic/claude-3.5-haiku"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic/claude-sonnet-4.5"),
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic/claude-3.5-sonnet"),
        ("amazon.nova-pro-v1:0", "amazon/nova-pro-v1"),
        # A date that is part of the catalog id is kept.
        ("mistral-large-2411", "mistralai/mistral-large-2411"),
        ("qwen3-235b-a22b-2507", "qwen/qwen3-235b-a22b-2507"),
        ("deepseek-r1-0528", "deepseek/deepseek-r1-0528"),
        ("command-r-08-2024", "cohere/command-r-08-2024"),
        # Aliases.
        ("gemini-2.0-flash", "google/gemini-2.0-flash-001"),
        ("claude-sonnet-4-0", "anthropic/claude-sonnet-4"),
        ("claude-sonnet-4-20250514", "anthropic/claude-sonnet-4"),
    ],
)
def test_gateway_names_resolve_to_catalog_ids(
    resolver: ModelResolver, name: str, expected: str
) -> None:
    """Each documented rule, on names real gateways and SDKs send."""
    assert expected in SHIPPED
    assert resolver.resolve(name) == expected


@pytest.mark.parametrize(
    "name",
    ["my-finetune-v3", "gpt-99", "gpt-4-0613", "", "/", "llama3.1:8b", "openai/gpt-4o-ultra"],
)
def test_names_no_rule_explains_stay_unresolved(resolver: ModelResolver, name: str) -> None:
    """An unknown model resolves to nothing (it is counted under its own id)."""
    assert resolver.resolve(name) is None


def test_a_bare_name_of_several_vendors_needs_a_hint() -> None:
    """ "model-1" of two labs: only a path prefix or the span's provider picks one."""
    catalog = Catalog(
        [
            ModelInfo("lab-a/model-1", "A 1", "Lab A", "US"),
            ModelInfo("lab-b/model-1", "B 1", "Lab B", "FR"),
        ]
    )
    resolver = ModelResolver(catalog)
    assert resolver.resolve("model-1") is None
    assert resolver.resolve("model-1", "lab-b") == "lab-b/model-1"
    assert resolver.resolve("Lab-A/model-1-20250101") == "lab-a/model-1"
    assert resolver.resolve("model-1", "someone-else") is None


def test_every_alias_names_a_shipped_model() -> None:
    """An alias to a model the catalog lost would silently count under the wrong id."""
    missing = {alias: target for alias, target in ALIASES.items() if target not in SHIPPED}
    assert not missing
    assert all(alias == alias.lower() for alias in ALIASES)


def test_normalised_forms_go_from_literal_to_stripped() -> None:
    """The order the rules are tried in: as sent first, the most stripped last."""
    forms = list(normalised_forms("us.anthropic.claude-sonnet-4-5-20250929-v1:0"))
    assert forms[0] == "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert forms[-2:] == ["claude-sonnet-4-5", "claude-sonnet-4.5"]


@pytest.mark.parametrize(
    ("provider", "vendor"),
    [
        ("openai", "OpenAI"),
        ("anthropic", "Anthropic"),
        ("mistral_ai", SHIPPED.describe("mistralai/mistral-large").vendor),
        ("x_ai", SHIPPED.describe("x-ai/grok-4").vendor),
        ("aws.bedrock", "aws.bedrock"),
        ("my-gateway", "my-gateway"),
    ],
)
def test_vendor_names_follow_the_catalog(
    resolver: ModelResolver, provider: str, vendor: str
) -> None:
    """A provider that is a catalog vendor is named as the catalog names it."""
    assert resolver.vendor_name(provider) == vendor


def test_the_cache_is_bounded(resolver: ModelResolver) -> None:
    """A client inventing model names cannot grow the cache without bound."""
    fresh = ModelResolver(SHIPPED)
    for i in range(10_000):
        fresh.resolve(f"invented-{i}")
    assert len(fresh._cache) <= 4096
    assert fresh.resolve("gpt-4o-2024-08-06") == "openai/gpt-4o"
