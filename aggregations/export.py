"""Leaderboard exports: one week's whole board of a dimension as CSV, JSON or Parquet bytes.

Pure: the shell reads the board (:func:`streams.store.queries.leaderboard` with ``n=None``,
a dict whose rows name the member after its dimension) and these functions turn it into
bytes. The three formats have the same columns in the same order (:func:`columns_for`), named
as everywhere else in tokenboard's JSON: the member under its dimension's name (``model``,
``country``, ``vendor``, ``app``), its display ``name`` (model rows add the model's
``vendor`` and ``country``), the counts as in the usage event, and the ranking figures.
A column list is data: a count added to every dimension (spend, say) is one more
:class:`Column`.

Values are exact: tokens and costs (micro-dollars) are 64-bit integers in Parquet, digits in
CSV and JSON; an unknown value (no previous week, the cost of a member none of whose tokens
had a price) is an empty CSV cell, JSON ``null`` and a Parquet null, never 0.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from aggregations.errors import InvalidInput

__all__ = [
    "FORMATS",
    "MEDIA_TYPES",
    "Column",
    "ExportFormat",
    "check_format",
    "columns_for",
    "encode_export",
    "export_filename",
    "export_rows",
    "to_csv",
    "to_json",
    "to_parquet",
]

ExportFormat = Literal["csv", "json", "parquet"]
FORMATS: tuple[ExportFormat, ...] = ("csv", "json", "parquet")
#: Content-Type of each format (``application/vnd.apache.parquet`` is registered with IANA).
MEDIA_TYPES: Mapping[ExportFormat, str] = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "parquet": "application/vnd.apache.parquet",
}


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its name, the kind of its values, and whether a value may be missing."""

    name: str
    kind: Literal["int", "str", "float"]
    nullable: bool = False


_COUNTS = (
    Column("tokens", "int"),
    Column("prompt_tokens", "int"),
    Column("completion_tokens", "int"),
    Column("calls", "int"),
    Column("cost_micro_usd", "int", nullable=True),
    Column("unpriced_tokens", "int"),
)
_FIGURES = (
    Column("share_pct", "float", nullable=True),
    Column("spend_share_pct", "float", nullable=True),
    Column("prev_rank", "int", nullable=True),
    Column("prev_tokens", "int", nullable=True),
    Column("wow_pct", "float", nullable=True),
)
#: What model rows carry besides their name.
_MODEL_LABELS = (Column("vendor", "str"), Column("country", "str"))


def check_format(text: str) -> ExportFormat:
    """``text`` as an export format; :class:`InvalidInput` naming the formats otherwise."""
    for known in FORMATS:
        if text == known:
            return known
    raise InvalidInput(f"unknown export format {text!r}: expected one of {', '.join(FORMATS)}")


def columns_for(dimension: str) -> tuple[Column, ...]:
    """The columns of an export of ``dimension``, in order."""
    labels = _MODEL_LABELS if dimension == "model" else ()
    return (
        Column("rank", "int"),
        Column(dimension, "str"),
        Column("name", "str"),
        *labels,
        *_COUNTS,
        *_FIGURES,
    )


def export_rows(board: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of a leaderboard dict with exactly the export's columns, in order."""
    names = [column.name for column in columns_for(board["dimension"])]
    return [{name: row.get(name) for name in names} for row in board["rows"]]


def export_filename(dimension: str, week: str, fmt: ExportFormat) -> str:
    """``tokenboard-app-2026-W47.csv``: what a download is saved as."""
    return f"tokenboard-{dimension}-{week}.{fmt}"


def _header(board: Mapping[str, Any]) -> dict[str, Any]:
    """What the whole export is about (JSON fields, Parquet schema metadata)."""
    head = {key: board[key] for key in ("dimension", "week", "total_tokens", "ranked")}
    if "unranked_tokens" in board:
        head["unranked_tokens"] = board["unranked_tokens"]
    head["total_cost_micro_usd"] = board.get("total_cost_micro_usd")
    head["unpriced_tokens"] = board.get("unpriced_tokens", board["total_tokens"])
    return head


def to_csv(columns: Sequence[Column], rows: Sequence[Mapping[str, Any]]) -> bytes:
    """RFC 4180 CSV (CRLF line ends, quotes where needed) with a header line; UTF-8."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([column.name for column in columns])
    for row in rows:
        writer.writerow(["" if row[c.name] is None else row[c.name] for c in columns])
    return out.getvalue().encode()


def to_json(board: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> bytes:
    """``{"dimension", "week", "total_tokens", "ranked", ["unranked_tokens",]
    "total_cost_micro_usd", "unpriced_tokens", "rows"}``."""
    return orjson.dumps({**_header(board), "rows": list(rows)})


def to_parquet(
    columns: Sequence[Column], rows: Sequence[Mapping[str, Any]], metadata: Mapping[str, Any]
) -> bytes:
    """One Parquet file: a row group of typed columns (int64, string, float64), and
    ``metadata`` as the schema's key-value metadata (JSON values)."""
    # Imported here: pyarrow takes a while to import, and only exports need it.
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"int": pa.int64(), "str": pa.string(), "float": pa.float64()}
    schema = pa.schema(
        [pa.field(c.name, types[c.kind], nullable=c.nullable) for c in columns],
        metadata={key: orjson.dumps(value) for key, value in metadata.items()},
    )
    table = pa.table({c.name: [row[c.name] for row in rows] for c in columns}, schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def encode_export(board: Mapping[str, Any], fmt: ExportFormat) -> bytes:
    """A leaderboard dict (every row) in ``fmt``."""
    columns = columns_for(board["dimension"])
    rows = export_rows(board)
    if fmt == "csv":
        return to_csv(columns, rows)
    if fmt == "json":
        return to_json(board, rows)
    return to_parquet(columns, rows, _header(board))
