"""Loading the price catalog: the table shipped in the package plus the operator's overrides.

Loaded like the model catalog (:mod:`streams.catalog`); stage 1 of every worker prices each
event with it (aggregations/prices.py).
"""

from __future__ import annotations

import functools

from aggregations.prices import PriceBook
from streams.data_files import read_operator_file, read_shipped_file

__all__ = ["PriceError", "load_prices", "shipped_prices"]


class PriceError(ValueError):
    """A price catalog file that cannot be read or is not a valid price catalog."""


@functools.cache
def shipped_prices() -> PriceBook:
    """The price catalog shipped as ``aggregations/data/prices.json``, read once per process."""
    return PriceBook.from_mapping(read_shipped_file("prices.json"))


def load_prices(path: str | None = None) -> PriceBook:
    """The shipped prices, every model the override file at ``path`` names priced by it alone.

    ``path`` None or empty (``TOKENBOARD_PRICES_PATH`` unset) means no overrides. The file
    has the shipped file's shape; raises :class:`PriceError` naming it when it is missing,
    unreadable or invalid.
    """
    shipped = shipped_prices()
    if not path:
        return shipped
    overrides = read_operator_file(path, "price catalog", PriceBook.from_mapping, PriceError)
    return shipped.merged(overrides)
