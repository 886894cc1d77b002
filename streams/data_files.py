"""Reading the tables shipped with the package and the operator files that override them.

The model catalog (:mod:`streams.catalog`) and the price catalog (:mod:`streams.prices`)
are each a JSON file under ``aggregations/data/`` plus an optional operator file of the
same shape whose entries win; both fail the same way, naming the operator's file.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import orjson

__all__ = ["read_operator_file", "read_shipped_file"]

T = TypeVar("T")


def read_shipped_file(name: str) -> Any:
    """The parsed JSON of ``aggregations/data/<name>``."""
    return orjson.loads((resources.files("aggregations") / "data" / name).read_bytes())


def read_operator_file(
    path: str, what: str, parse: Callable[[Any], T], error: Callable[[str], Exception]
) -> T:
    """``parse`` of the JSON file at ``path``; raises ``error(message)`` naming the file (as
    ``what``, e.g. "model catalog") when it is missing, unreadable, not JSON or refused by
    ``parse`` (a ValueError)."""
    file = Path(path).expanduser()
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {file}: {exc.strerror or exc}") from exc
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise error(f"{what} {file} is not valid JSON: {exc}") from exc
    try:
        return parse(data)
    except ValueError as exc:
        raise error(f"{what} {file} is invalid: {exc}") from exc
