"""Loading the model catalog: the table shipped in the package plus the operator's overrides.

Shared by every process that names models: the worker (stage 1 describes each model) and the
ingest gateway (OTLP spans resolve model names to catalog ids).
"""

from __future__ import annotations

import functools

from aggregations.catalog import Catalog
from streams.data_files import read_operator_file, read_shipped_file

__all__ = ["CatalogError", "load_catalog", "shipped_catalog"]


class CatalogError(ValueError):
    """A model catalog file that cannot be read or is not a valid catalog."""


@functools.cache
def shipped_catalog() -> Catalog:
    """The catalog shipped as ``aggregations/data/catalog.json``, read once per process."""
    return Catalog.from_mapping(read_shipped_file("catalog.json"))


def load_catalog(path: str | None = None) -> Catalog:
    """The shipped catalog, with the entries of the override file at ``path`` winning.

    ``path`` None or empty (``TOKENBOARD_CATALOG_PATH`` unset) means no overrides. The file
    has the shipped file's shape; raises :class:`CatalogError` naming it when it is missing,
    unreadable or invalid.
    """
    shipped = shipped_catalog()
    if not path:
        return shipped
    overrides = read_operator_file(path, "model catalog", Catalog.from_mapping, CatalogError)
    return shipped.merged(overrides)
