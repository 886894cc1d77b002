"""Leaderboard exports: the same columns and exact values in CSV, JSON and Parquet."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregations.errors import InvalidInput
from aggregations.export import (
    FORMATS,
    MEDIA_TYPES,
    check_format,
    columns_for,
    encode_export,
    export_filename,
    export_rows,
)

BIG = 2**62 + 3  # beyond a double's exact integers


def app_board(**overrides: Any) -> dict[str, Any]:
    """An app leaderboard shaped like streams.store.queries.leaderboard's answer (n=None)."""
    value: dict[str, Any] = {
        "dimension": "app",
        "week": "2026-W47",
        "previous_week": "2026-W46",
        "has_previous": True,
        "total_tokens": BIG + 1000,
        "unranked_tokens": 400,
        "total_cost_micro_usd": BIG + 7,
        "unpriced_tokens": 1000,
        "ranked": 2,
        "unpriced_members": 1,
        "rows": [
            {
                "rank": 1, "app": "support-bot", "name": "support-bot", "tokens": BIG,
                "prompt_tokens": BIG - 100, "completion_tokens": 100, "calls": 7,
                "cost_micro_usd": BIG + 7, "unpriced_tokens": 400, "share_pct": 99.9,
                "spend_share_pct": 100.0, "prev_tokens": 10, "prev_rank": 2, "wow_pct": 12.5,
                "move": "↑1",
            },
            {
                "rank": 2, "app": 'a,"quoted"\nname', "name": 'a,"quoted"\nname',
                "tokens": 600, "prompt_tokens": 500, "completion_tokens": 100, "calls": 1,
                "cost_micro_usd": None, "unpriced_tokens": 600, "share_pct": None,
                "spend_share_pct": None, "prev_tokens": None, "prev_rank": None, "wow_pct": None,
                "move": "new",
            },
        ],
    }  # fmt: skip
    value.update(overrides)
    return value


def model_board() -> dict[str, Any]:
    """A one-row model leaderboard."""
    row = {
        "rank": 1, "model": "deepseek/deepseek-v4-flash", "name": "DeepSeek-V4-Flash",
        "vendor": "DeepSeek", "country": "CN", "tokens": 3, "prompt_tokens": 2,
        "completion_tokens": 1, "calls": 1, "cost_micro_usd": 0, "unpriced_tokens": 0,
        "share_pct": 100.0, "spend_share_pct": None, "prev_tokens": None,
        "prev_rank": None, "wow_pct": None, "move": "new",
    }  # fmt: skip
    board = app_board(dimension="model", rows=[row], ranked=1, total_tokens=3)
    del board["unranked_tokens"]  # only app boards have an unranked member
    return board


def test_columns_name_the_member_after_its_dimension() -> None:
    """rank, the member under its dimension's name, name, (models: vendor, country), counts."""
    names = [c.name for c in columns_for("app")]
    assert names == [
        "rank", "app", "name", "tokens", "prompt_tokens", "completion_tokens", "calls",
        "cost_micro_usd", "unpriced_tokens", "share_pct", "spend_share_pct", "prev_rank",
        "prev_tokens", "wow_pct",
    ]  # fmt: skip
    assert [c.name for c in columns_for("model")][:5] == [
        "rank", "model", "name", "vendor", "country",
    ]  # fmt: skip


def test_rows_keep_exactly_the_columns_in_order() -> None:
    """A row's move (a display) is left out; the column order is the dict's."""
    rows = export_rows(app_board())
    assert list(rows[0]) == [c.name for c in columns_for("app")]
    assert "move" not in rows[0]


def test_csv_quotes_and_keeps_integers_exact() -> None:
    """RFC 4180: CRLF line ends, quoted commas, quotes and newlines; big counts exact;
    unknown values are empty cells."""
    data = encode_export(app_board(), "csv")
    assert data.startswith(b"rank,app,name,tokens,")
    assert b"\r\n" in data
    header, first, second = list(csv.reader(io.StringIO(data.decode(), newline="")))
    assert header == [c.name for c in columns_for("app")]
    assert first[:4] == ["1", "support-bot", "support-bot", str(BIG)]
    assert first[7:9] == [str(BIG + 7), "400"]
    assert second[1] == 'a,"quoted"\nname'
    assert second[-4:] == ["", "", "", ""]
    # An unknown cost (no price for any token) is an empty cell, never 0.
    assert second[7:10] == ["", "600", ""]


def test_json_carries_the_header_fields_and_rows() -> None:
    """The JSON names the week, dimension, totals (unranked too) and every row."""
    body = orjson.loads(encode_export(app_board(), "json"))
    assert body["dimension"] == "app" and body["week"] == "2026-W47"
    assert (body["total_tokens"], body["unranked_tokens"], body["ranked"]) == (BIG + 1000, 400, 2)
    assert body["rows"][0]["tokens"] == BIG
    assert body["rows"][1]["prev_rank"] is None
    assert (body["total_cost_micro_usd"], body["unpriced_tokens"]) == (BIG + 7, 1000)
    assert body["rows"][1]["cost_micro_usd"] is None
    assert "unranked_tokens" not in orjson.loads(encode_export(model_board(), "json"))


def test_parquet_has_typed_columns_exact_values_and_metadata() -> None:
    """int64 counts (exact past 2**53), nullable figures, and the header as metadata."""
    table = pq.read_table(io.BytesIO(encode_export(app_board(), "parquet")))
    assert table.column_names == [c.name for c in columns_for("app")]
    assert str(table.schema.field("tokens").type) == "int64"
    assert str(table.schema.field("share_pct").type) == "double"
    assert table.column("tokens").to_pylist() == [BIG, 600]
    assert table.column("wow_pct").to_pylist() == [12.5, None]
    assert str(table.schema.field("cost_micro_usd").type) == "int64"
    assert table.column("cost_micro_usd").to_pylist() == [BIG + 7, None]
    assert table.column("app").to_pylist()[1] == 'a,"quoted"\nname'
    meta = {k.decode(): orjson.loads(v) for k, v in table.schema.metadata.items()}
    assert meta["unranked_tokens"] == 400 and meta["week"] == "2026-W47"
    assert meta["total_cost_micro_usd"] == BIG + 7


def test_an_empty_board_exports_its_header() -> None:
    """No ranked member: CSV has its header line, JSON an empty list, Parquet no row."""
    empty = app_board(rows=[], ranked=0)
    assert encode_export(empty, "csv").count(b"\r\n") == 1
    assert orjson.loads(encode_export(empty, "json"))["rows"] == []
    assert pq.read_table(io.BytesIO(encode_export(empty, "parquet"))).num_rows == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_has_a_media_type_and_file_name(fmt: str) -> None:
    """Each format is known, typed for HTTP and named for a download."""
    assert check_format(fmt) == fmt
    assert MEDIA_TYPES[check_format(fmt)]
    assert export_filename("app", "2026-W47", check_format(fmt)) == f"tokenboard-app-2026-W47.{fmt}"


def test_an_unknown_format_is_invalid_input() -> None:
    """A bad format is the caller's fault (a 400), naming the formats."""
    with pytest.raises(InvalidInput, match="csv, json, parquet"):
        check_format("xlsx")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=20),
            st.integers(0, 2**63 - 1),
            st.none() | st.integers(0, 2**63 - 1),
        ),
        max_size=8,
        unique_by=lambda r: r[0],
    )
)
def test_the_three_formats_hold_the_same_rows(
    members: list[tuple[str, int, int | None]],
) -> None:
    """Whatever the names (commas, quotes, newlines, any Unicode) and counts, CSV, JSON and
    Parquet read back to the same table."""
    rows = [
        {"rank": i + 1, "app": m, "name": m, "tokens": t, "prompt_tokens": t,
         "completion_tokens": 0, "calls": 1, "cost_micro_usd": c,
         "unpriced_tokens": t if c is None else 0, "share_pct": None,
         "spend_share_pct": None, "prev_tokens": None, "prev_rank": None, "wow_pct": None}
        for i, (m, t, c) in enumerate(members)
    ]  # fmt: skip
    board = app_board(rows=rows, ranked=len(rows))
    want = export_rows(board)
    from_json = orjson.loads(encode_export(board, "json"))["rows"]
    from_parquet = pq.read_table(io.BytesIO(encode_export(board, "parquet"))).to_pylist()
    text = encode_export(board, "csv").decode()
    _, *cells = list(csv.reader(io.StringIO(text, newline="")))
    kinds = {c.name: c.kind for c in columns_for("app")}
    from_csv = [
        {
            name: None if value == "" and kinds[name] != "str" else
            int(value) if kinds[name] == "int" else value
            for name, value in zip(kinds, line, strict=True)
        }
        for line in cells
    ]  # fmt: skip
    assert from_json == want
    assert from_parquet == want
    assert from_csv == want
