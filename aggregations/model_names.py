"""Model names as gateways and SDKs send them, resolved to catalog model ids.

The catalog names models the way OpenRouter does (``openai/gpt-4o``,
``anthropic/claude-sonnet-4.5``), while a provider's own API, a gateway or an
OpenTelemetry span names the same model ``gpt-4o-2024-08-06``, ``azure/gpt-4o``,
``claude-sonnet-4-5@20250929`` or ``us.anthropic.claude-sonnet-4-5-20250929-v1:0``.
:class:`ModelResolver` maps such a name to its catalog id with these rules, in order; the
first candidate that is a catalog id wins:

1. the name as sent, then lower-cased, is a catalog id;
2. a routing prefix is dropped: each ``/``-separated tail of the name is tried as an id
   (``openrouter/anthropic/claude-sonnet-4.5``), and the last segment is the bare name
   (``azure/gpt-4o``, ``models/gemini-2.5-flash``, ``vertex_ai/claude-...``);
3. the bare name, then its normalised forms, are looked up among the catalog ids' bare names
   and in :data:`ALIASES`. Normalising drops, step by step: a version after ``@``
   (Vertex AI: ``claude-sonnet-4-5@20250929``); a Bedrock region and vendor prefix and its
   ``-v1:0`` version (``us.anthropic.claude-...-v1:0``); a date suffix (``-2024-08-06``,
   ``-20250929``, ``-0613``) or ``-latest``. Each form is also tried with single-digit
   version numbers joined by a dot instead of a dash (``claude-3-5-sonnet`` ->
   ``claude-3.5-sonnet``), as the catalog writes them;
4. a bare name that several catalog vendors share is only resolved when the name's prefix
   or the span's provider (``gen_ai.provider.name``) names one of them.

A name that resolves to nothing stays as sent: the pipeline counts it under that id, with
the vendor the span reports (see :meth:`ModelResolver.vendor_name`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from aggregations.catalog import Catalog

__all__ = ["ALIASES", "PROVIDER_PREFIXES", "ModelResolver"]

#: Names no rule turns into a catalog id, mapped by hand (keys are lower-case bare names,
#: after the normalisation above). Every target is a shipped catalog id (a test checks).
ALIASES: Mapping[str, str] = {
    "gemini-2.0-flash": "google/gemini-2.0-flash-001",
    "gemini-2.0-flash-lite": "google/gemini-2.0-flash-lite-001",
    # Anthropic's own aliases of the first Claude 4 models.
    "claude-sonnet-4.0": "anthropic/claude-sonnet-4",
    "claude-opus-4.0": "anthropic/claude-opus-4",
    "claude-4-sonnet": "anthropic/claude-sonnet-4",
    "claude-4-opus": "anthropic/claude-opus-4",
    "gpt-4o-latest": "openai/chatgpt-4o-latest",
    "kimi-k2-instruct": "moonshotai/kimi-k2",
    "grok-code-fast": "x-ai/grok-code-fast-1",
    "llama-3.3-70b-versatile": "meta-llama/llama-3.3-70b-instruct",
}

#: ``gen_ai.provider.name`` / ``gen_ai.system`` values (OpenTelemetry GenAI semantic
#: conventions) whose models' catalog ids start with another prefix than the value itself.
PROVIDER_PREFIXES: Mapping[str, str] = {
    "mistral_ai": "mistralai",
    "mistral": "mistralai",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "meta": "meta-llama",
    "gcp.gemini": "google",
    "gemini": "google",
    "google_genai": "google",
    "moonshot": "moonshotai",
    "zhipu": "z-ai",
    "alibaba": "qwen",
    "dashscope": "qwen",
}

# Bedrock model ids: "us.anthropic.claude-...-v1:0". The vendor list is Bedrock's own.
_BEDROCK_PREFIX = re.compile(
    r"^(?:(?:us|eu|apac|au|ca|jp|us-gov|global)\.)?"
    r"(?:anthropic|meta|amazon|mistral|cohere|ai21|deepseek|qwen|openai|writer|twelvelabs)\."
)
_BEDROCK_VERSION = re.compile(r"(?:-v\d+)?(?::\d+)?$")
_DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|latest)$")
# "4-5" between separators is a version "4.5"; "2024-08" (no single digits) is not.
_DASHED_VERSION = re.compile(r"(?<![0-9.])([0-9])-([0-9])(?![0-9])")
# Results are cached per (name, provider); a stream names few models, a hostile client many.
_CACHE_LIMIT = 4096


def _bare(model_id: str) -> str:
    return model_id.rpartition("/")[2]


def _prefix(model_id: str) -> str:
    return model_id.partition("/")[0] if "/" in model_id else ""


def normalised_forms(bare: str) -> Iterator[str]:
    """The forms of a lower-case bare model name that rule 3 tries, most literal first.

    Repeats are possible; callers stop at the first form that resolves.
    """
    steps = [bare]
    current = bare.partition("@")[0]
    steps.append(current)
    if _BEDROCK_PREFIX.match(current):
        current = _BEDROCK_PREFIX.sub("", current)
        steps.append(current)
        steps.append(re.sub(r":\d+$", "", current))
        current = _BEDROCK_VERSION.sub("", current)
        steps.append(current)
    # "claude-3-5-sonnet-20241022-latest" has two suffixes: strip until none is left.
    while (stripped := _DATE_SUFFIX.sub("", current)) != current and stripped:
        current = stripped
        steps.append(current)
    for form in steps:
        yield form
        dotted = _DASHED_VERSION.sub(r"\1.\2", form)
        if dotted != form:
            yield dotted


class ModelResolver:
    """Resolves model names to ids of one :class:`Catalog` (module docstring: the rules)."""

    __slots__ = ("_by_bare", "_cache", "_catalog", "_vendors")

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._by_bare: dict[str, list[str]] = {}
        self._vendors: dict[str, str] = {}
        for info in catalog:
            self._by_bare.setdefault(_bare(info.id), []).append(info.id)
            self._vendors.setdefault(_prefix(info.id), info.vendor)
        self._cache: dict[tuple[str, str | None], str | None] = {}

    @property
    def catalog(self) -> Catalog:
        """The catalog names are resolved against."""
        return self._catalog

    def resolve(self, name: str, provider: str | None = None) -> str | None:
        """The catalog id ``name`` stands for, or None when no rule finds one.

        ``provider`` is the span's ``gen_ai.provider.name`` (or ``gen_ai.system``): it only
        decides between catalog models of different vendors that share a bare name.
        """
        key = (name, provider)
        if key in self._cache:
            return self._cache[key]
        found = self._resolve(name, provider)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = found
        return found

    def _resolve(self, name: str, provider: str | None) -> str | None:
        text = name.strip()
        catalog = self._catalog
        if text in catalog:
            return text
        lower = text.lower()
        if lower in catalog:
            return lower
        segments = [s for s in lower.split("/") if s]
        if not segments:
            return None
        for start in range(1, len(segments) - 1):
            tail = "/".join(segments[start:])
            if tail in catalog:
                return tail
        hints = {self._catalog_prefix(s) for s in segments[:-1]}
        if provider:
            hints.add(self._catalog_prefix(provider))
        for form in normalised_forms(segments[-1]):
            alias = ALIASES.get(form)
            if alias is not None and alias in catalog:
                return alias
            found = self._by_bare_name(form, hints)
            if found is not None:
                return found
        return None

    def _by_bare_name(self, bare: str, hints: set[str]) -> str | None:
        ids = self._by_bare.get(bare)
        if not ids:
            return None
        if len(ids) == 1:
            return ids[0]
        matching = [model_id for model_id in ids if _prefix(model_id) in hints]
        return matching[0] if len(matching) == 1 else None

    @staticmethod
    def _catalog_prefix(provider: str) -> str:
        lower = provider.strip().lower()
        return PROVIDER_PREFIXES.get(lower, lower)

    def vendor_name(self, provider: str) -> str:
        """The vendor to count an unknown model under, from the span's provider name.

        A provider that is a catalog prefix (``openai``, ``mistral_ai``) becomes that
        vendor's catalog name (``OpenAI``, ``Mistral AI``), so the vendor leaderboard does
        not split one vendor in two; any other provider (``aws.bedrock``) is kept as sent.
        """
        return self._vendors.get(self._catalog_prefix(provider), provider)
