"""Loading the model catalog: the table shipped in the package plus the operator's overrides.

Shared by every process that names models: the worker (stage 1 describes each model) and the
ingest gateway (OTLP spans resolve model names to catalog ids).
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import orjson

from aggregations.catalog import Catalog

__all__ = ["CatalogError", "load_catalog", "shipped_catalog"]


class CatalogError(ValueError):
    """A model catalog file that cannot be read or is not a valid catalog."""


@functools.cache
def shipped_catalog() -> Catalog:
    """The catalog shipped as ``aggregations/data/catalog.json``, read once per process."""
    raw = (resources.files("aggregations") / "data" / "catalog.json").read_bytes()
    return Catalog.from_mapping(orjson.loads(raw))


def load_catalog(path: str | None = None) -> Catalog:
    """The shipped catalog, with the entries of the override file at ``path`` winning.

    ``path`` None or empty (``TOKENBOARD_CATALOG_PATH`` unset) means no overrides. The file
    has the shipped file's shape; raises :class:`CatalogError` naming it when it is missing,
    unreadable or invalid.
    """
    shipped = shipped_catalog()
    if not path:
        return shipped
    file = Path(path).expanduser()
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise CatalogError(f"cannot read model catalog {file}: {exc.strerror or exc}") from exc
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CatalogError(f"model catalog {file} is not valid JSON: {exc}") from exc
    try:
        overrides = Catalog.from_mapping(data)
    except ValueError as exc:
        raise CatalogError(f"model catalog {file} is invalid: {exc}") from exc
    return shipped.merged(overrides)
