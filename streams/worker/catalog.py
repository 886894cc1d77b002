"""The worker's catalog loader: :mod:`streams.catalog`, which the ingest gateway shares.

Kept so the worker, the simulator and the benches import it from where they always did.
"""

from __future__ import annotations

from streams.catalog import CatalogError, load_catalog, shipped_catalog

__all__ = ["CatalogError", "load_catalog", "shipped_catalog"]
