"""`current` and `last` mean one thing everywhere, and the report's default is the same in
the CLI and the API."""

from __future__ import annotations

from typing import Any

from streams.cli.main import build_parser
from streams.http.openapi_read import openapi_document


def week_default(document: dict[str, Any], path: str) -> str:
    """The documented default of a path's ``week`` parameter."""
    parameters = document["paths"][path]["get"]["parameters"]
    week = next(p for p in parameters if p["name"] == "week")
    return str(week["schema"]["default"])


def test_report_defaults_to_last_in_the_cli_and_the_api() -> None:
    """`tokenboard report` and GET /v1/report both default to the last complete week."""
    document = openapi_document()
    assert build_parser().parse_args(["report"]).week == "last"
    assert week_default(document, "/v1/report") == "last"


def test_leaderboards_default_to_current_in_the_cli_and_the_api() -> None:
    """`tokenboard top` and GET /v1/leaderboard/{dimension} both show the week in progress."""
    document = openapi_document()
    assert build_parser().parse_args(["top"]).week == "current"
    assert week_default(document, "/v1/leaderboard/{dimension}") == "current"


def test_the_documented_meaning_of_last_is_the_week_before_current() -> None:
    """The API documents `last` as the week before the current one, not the last closed."""
    document = openapi_document()
    parameters = document["paths"]["/v1/report"]["get"]["parameters"]
    text = next(p for p in parameters if p["name"] == "week")["description"]
    assert "the week before it" in text and "closed or not" in text
