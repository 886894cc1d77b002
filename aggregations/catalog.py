"""The model catalog: display name, vendor and country of origin for each model id.

The shipped table lives in ``aggregations/data/catalog.json``; ``streams.worker.catalog`` loads it
and the operator's overrides. Events name only the model, so the vendor and country
leaderboards are filled from here, while models missing from the catalog are still counted,
under their id's prefix as vendor and the country :data:`UNKNOWN_COUNTRY`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

# _build_event is the decoder's fast constructor; resolve() runs once per event of the stream too.
from aggregations.events import UsageEvent, _build_event

__all__ = ["UNKNOWN_COUNTRY", "UNKNOWN_VENDOR", "Catalog", "ModelInfo", "catalog_entries"]

# "ZZ" is reserved for user assignment in ISO 3166-1, so it can never clash with a real country.
UNKNOWN_COUNTRY = "ZZ"
# Vendor of an unknown model whose id has no "vendor/" prefix to derive one from.
UNKNOWN_VENDOR = "unknown"


def catalog_entries(data: object, what: str, key: str, fields: str) -> list[object]:
    """The ``key`` list of a versioned catalog file's JSON (``{"version": 1, key: [...]}``),
    shared by the model and price catalogs; raises ValueError naming ``what`` otherwise."""
    if not isinstance(data, Mapping):
        raise ValueError(f"a {what} must be a JSON object, got {type(data).__name__}")
    version = data.get("version", 1)
    if version != 1 or isinstance(version, bool):
        raise ValueError(f"unsupported {what} version {version!r}, expected 1")
    entries = data.get(key)
    if not isinstance(entries, list):
        raise ValueError(f"a {what} needs a '{key}' list of {fields}")
    return entries


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the leaderboard shows for a model."""

    id: str
    name: str
    vendor: str
    country: str


def _vendor_from_id(model_id: str) -> str:
    prefix, slash, _ = model_id.partition("/")
    return prefix if slash and prefix else UNKNOWN_VENDOR


def _entry_text(entry: Mapping[str, object], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    return value


def _parse_entry(index: int, entry: object) -> ModelInfo:
    if not isinstance(entry, Mapping):
        raise ValueError(f"catalog entry #{index}: must be an object, got {entry!r}")
    raw_id = entry.get("id")
    where = f"catalog entry #{index} ({raw_id!r})" if raw_id is not None else f"entry #{index}"
    model_id = _entry_text(entry, "id", where)
    name = _entry_text(entry, "name", where)
    vendor = _entry_text(entry, "vendor", where)
    country = _entry_text(entry, "country", where)
    if not (len(country) == 2 and country.isascii() and country.isalpha()):
        raise ValueError(
            f"{where}: 'country' must be an ISO 3166-1 alpha-2 code such as 'US', got {country!r}"
        )
    return ModelInfo(model_id, name, vendor, country.upper())


class Catalog:
    """An immutable map from model id to :class:`ModelInfo`."""

    __slots__ = ("_models",)

    def __init__(self, models: Iterable[ModelInfo] = ()) -> None:
        by_id: dict[str, ModelInfo] = {}
        for info in models:
            if info.id in by_id:
                raise ValueError(f"model {info.id!r} appears twice in the catalog")
            by_id[info.id] = info
        self._models = by_id

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> Catalog:
        """Build from the JSON shape ``{"version": 1, "models": [{id, name, vendor, country}]}``.

        Raises ValueError naming the first bad entry. Keys other than these are ignored.
        """
        entries = catalog_entries(data, "model catalog", "models", "{id, name, vendor, country}")
        models: list[ModelInfo] = []
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            info = _parse_entry(index, entry)
            if info.id in seen:
                raise ValueError(f"catalog entry #{index} ({info.id!r}): duplicate model id")
            seen.add(info.id)
            models.append(info)
        return cls(models)

    def get(self, model_id: str) -> ModelInfo | None:
        """The catalog's entry for ``model_id``, or None."""
        return self._models.get(model_id)

    def is_known(self, model_id: str) -> bool:
        """Whether the catalog has an entry for ``model_id``."""
        return model_id in self._models

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._models

    def __len__(self) -> int:
        return len(self._models)

    def __iter__(self) -> Iterator[ModelInfo]:
        """The entries in model id order."""
        return iter(sorted(self._models.values(), key=lambda info: info.id))

    def __repr__(self) -> str:
        return f"<Catalog of {len(self._models)} models>"

    def merged(self, other: Catalog) -> Catalog:
        """A catalog with the entries of both; ``other`` wins for ids in both."""
        return Catalog({**self._models, **other._models}.values())

    def describe(
        self, model_id: str, *, vendor: str | None = None, country: str | None = None
    ) -> ModelInfo:
        """What to show for ``model_id``, known or not.

        ``vendor`` and ``country`` are the event's own values; they win over the catalog, as
        in :meth:`resolve`. An unknown model is named by its id, its vendor is the id's prefix
        before "/" (or :data:`UNKNOWN_VENDOR`) and its country :data:`UNKNOWN_COUNTRY`.
        """
        info = self._models.get(model_id)
        if info is None:
            return ModelInfo(
                model_id,
                model_id,
                vendor or _vendor_from_id(model_id),
                country or UNKNOWN_COUNTRY,
            )
        if vendor is None and country is None:
            return info
        return ModelInfo(info.id, info.name, vendor or info.vendor, country or info.country)

    def describer(self) -> Callable[[str], ModelInfo]:
        """:meth:`describe` of a model id alone, each id's answer built once.

        Stage 1 asks per batch bucket, and :meth:`describe` builds a new entry for an unknown
        model on every call: a dict lookup per id is what the hot path can afford.
        """
        answers: dict[str, ModelInfo] = {}

        def describe(model_id: str) -> ModelInfo:
            info = answers.get(model_id)
            if info is None:
                info = answers[model_id] = self.describe(model_id)
            return info

        return describe

    def resolve(self, event: UsageEvent) -> UsageEvent:
        """The event with ``vendor`` and ``country`` always set.

        Values the event carries win; missing ones come from the catalog, or for unknown
        models from :meth:`describe`'s fallbacks, so downstream never sees None there.
        """
        if event.vendor is not None and event.country is not None:
            return event
        info = self.describe(event.model, vendor=event.vendor, country=event.country)
        return _build_event(
            event.event_id,
            event.ts_ms,
            event.model,
            event.prompt_tokens,
            event.completion_tokens,
            event.reasoning_tokens,
            event.cached_tokens,
            event.calls,
            info.vendor,
            info.country,
            event.app,
            event.region,
        )
