"""The OpenAPI documents: components generated from the Structs, and bodies that match them."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import msgspec
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from aggregations.export import encode_export
from streams.http import ingest_schemas, schemas
from streams.http.openapi_ingest import ingest_openapi
from streams.http.openapi_read import openapi_document
from streams.settings import Settings

URI = "urn:tokenboard:test"


def structs(module: ModuleType) -> set[str]:
    """Names of the Struct classes a module defines, bar the shared bases (``Body``,
    ``RankedMember``), which no body is on its own."""
    return {
        name
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and issubclass(value, msgspec.Struct)
        and value.__module__ == module.__name__
        and name not in ("Body", "RankedMember")
    }


def refs(node: Any) -> Iterator[str]:
    """Every ``$ref`` in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def validator(document: dict[str, Any], name: str) -> Draft202012Validator:
    """A validator of the component schema ``name`` of ``document``."""
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(URI, resource)
    return Draft202012Validator({"$ref": f"{URI}#/components/schemas/{name}"}, registry=registry)


@pytest.fixture(scope="module")
def read_doc() -> dict[str, Any]:
    """The read API's document, as served (a JSON round trip)."""
    return msgspec.json.decode(msgspec.json.encode(openapi_document()), type=dict[str, Any])


@pytest.fixture(scope="module")
def ingest_doc() -> dict[str, Any]:
    """The gateway's document for default settings, as served."""
    return msgspec.json.decode(msgspec.json.encode(ingest_openapi(Settings())), type=dict[str, Any])


def check_document(document: dict[str, Any]) -> None:
    """An OpenAPI 3.1 document whose schemas are valid 2020-12 and whose refs all resolve."""
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["title"] and document["paths"]
    components = document["components"]["schemas"]
    for schema in components.values():
        Draft202012Validator.check_schema(schema)
    for ref in refs(document):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in components, ref


def test_read_document_is_openapi_31_with_resolvable_refs(read_doc: dict[str, Any]) -> None:
    """The read document is OpenAPI 3.1, its schemas valid JSON Schema 2020-12, no dangling ref."""
    check_document(read_doc)


def test_ingest_document_is_openapi_31_with_resolvable_refs(ingest_doc: dict[str, Any]) -> None:
    """The gateway document is OpenAPI 3.1, schemas valid JSON Schema 2020-12, no dangling ref."""
    check_document(ingest_doc)


def test_read_components_hold_every_struct(read_doc: dict[str, Any]) -> None:
    """Every response Struct of streams.http.schemas has a generated component, and no more."""
    assert set(read_doc["components"]["schemas"]) == structs(schemas)


def test_ingest_components_hold_every_struct(ingest_doc: dict[str, Any]) -> None:
    """Every gateway Struct has a component; the two verdicts are folded into EventResult."""
    verdicts = {"AcceptedResult", "RejectedResult"}
    expected = (structs(ingest_schemas) - verdicts) | {"EventResult"}
    assert set(ingest_doc["components"]["schemas"]) == expected
    one_of = ingest_doc["components"]["schemas"]["EventResult"]["oneOf"]
    assert {s["title"] for s in one_of} == verdicts


def test_every_read_route_documents_the_500(read_doc: dict[str, Any]) -> None:
    """Every operation of the read API documents its 500 with the InternalError body."""
    for path, item in read_doc["paths"].items():
        response = item["get"]["responses"]["500"]
        schema = response["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/InternalError"}, path


def test_a_converted_leaderboard_validates(read_doc: dict[str, Any]) -> None:
    """A query-shaped leaderboard converts to the Struct and its JSON matches the schema."""
    row = {
        "rank": 1, "model": "deepseek/deepseek-v4-flash", "name": "DeepSeek-V4-Flash",
        "vendor": "DeepSeek", "country": "CN", "tokens": 3_430_000_000_000,
        "prompt_tokens": 3_000_000_000_000, "completion_tokens": 430_000_000_000, "calls": 12,
        "cost_micro_usd": None, "unpriced_tokens": 3_430_000_000_000,
        "share_pct": 11.87, "spend_share_pct": None, "prev_tokens": 2_066_000_000_000,
        "prev_rank": 2, "wow_pct": 66.02, "prev_cost_micro_usd": None, "spend_wow_pct": None,
        "move": "↑1",
    }  # fmt: skip
    board = {
        "dimension": "model", "by": "tokens", "week": "2026-W47", "previous_week": "2026-W46",
        "has_previous": True, "total_tokens": 28_900_000_000_000,
        "total_cost_micro_usd": 16_242_000_000_000, "unpriced_tokens": 24_070_000_000_000,
        "ranked": 20, "unpriced_members": 16, "rows": [row],
    }  # fmt: skip
    body = msgspec.json.decode(schemas.encode(schemas.to_struct(board, schemas.Leaderboard)))
    assert body == board
    validator(read_doc, "Leaderboard").validate(body)


def test_labels_are_left_out_when_absent(read_doc: dict[str, Any]) -> None:
    """A vendor row has no model/country keys, and the JSON leaves them out rather than null."""
    rolling = {
        "dimension": "vendor", "from": "2026-11-16", "to": "2026-11-22", "days": 7,
        "total_tokens": 10, "ranked": 1,
        "rows": [{"rank": 1, "vendor": "DeepSeek", "name": "DeepSeek", "tokens": 10,
                  "share_pct": 100.0}],
    }  # fmt: skip
    body = msgspec.json.decode(
        schemas.encode(schemas.to_struct(rolling, schemas.RollingLeaderboard))
    )
    assert body == rolling
    validator(read_doc, "RollingLeaderboard").validate(body)


def test_undeclared_keys_are_refused(read_doc: dict[str, Any]) -> None:
    """An undeclared key fails both the conversion and the (closed) generated schema."""
    total = {"tokens": 1, "prev_tokens": None, "wow_pct": None, "growth_streak": 0, "extra": 1}
    with pytest.raises(msgspec.ValidationError):
        schemas.to_struct(total, schemas.Total)
    with pytest.raises(ValidationError):
        validator(read_doc, "Total").validate(total)


def test_constraints_carry_over_to_the_schema(read_doc: dict[str, Any]) -> None:
    """Negative counts, rank 0 and malformed week ids are refused by Struct and schema alike."""
    good = {"week": "2026-W47", "tokens": 5, "rank": 1, "ranked": 3, "share_pct": 1.0,
            "prev_tokens": None, "wow_pct": None}  # fmt: skip
    validator(read_doc, "HistoryWeek").validate(good)
    for bad in ({"tokens": -1}, {"ranked": -1}, {"week": "W47"}):
        with pytest.raises(msgspec.ValidationError):
            schemas.to_struct({**good, **bad}, schemas.HistoryWeek)
        with pytest.raises(ValidationError):
            validator(read_doc, "HistoryWeek").validate({**good, **bad})
    with pytest.raises(ValidationError):
        validator(read_doc, "LeaderboardRow").validate({"rank": 0})


def test_an_ingest_response_validates(ingest_doc: dict[str, Any]) -> None:
    """A mixed verdict body as the gateway encodes it matches IngestResponse."""
    body = ingest_schemas.IngestResponse(
        accepted=1,
        rejected=1,
        results=[
            ingest_schemas.AcceptedResult(index=0, event_id="evt-1"),
            ingest_schemas.RejectedResult(
                index=1, reason="negative_count", detail="prompt_tokens < 0", field="prompt_tokens"
            ),
        ],
    )
    decoded = msgspec.json.decode(ingest_schemas.encode(body))
    assert decoded["results"] == [
        {"index": 0, "event_id": "evt-1", "status": "accepted"},
        {"index": 1, "status": "rejected", "reason": "negative_count",
         "detail": "prompt_tokens < 0", "field": "prompt_tokens"},
    ]  # fmt: skip
    validator(ingest_doc, "IngestResponse").validate(decoded)
    with pytest.raises(ValidationError):
        validator(ingest_doc, "IngestResponse").validate(
            {**decoded, "results": [{"index": 0, "status": "rejected", "reason": "nope",
                                     "detail": "", "field": None}]}
        )  # fmt: skip


def test_ingest_error_bodies_validate(ingest_doc: dict[str, Any]) -> None:
    """The gateway's 4xx and 503 bodies match Error; ``accepted`` appears only when given."""
    plain = msgspec.json.decode(ingest_schemas.encode(
        ingest_schemas.Error(error="rate_limited", detail="slow down")
    ))  # fmt: skip
    assert plain == {"error": "rate_limited", "detail": "slow down"}
    unavailable = msgspec.json.decode(ingest_schemas.encode(
        ingest_schemas.Error(error="kafka_unavailable", detail="down", accepted=0)
    ))  # fmt: skip
    for body in (plain, unavailable):
        validator(ingest_doc, "Error").validate(body)
    with pytest.raises(ValidationError):
        validator(ingest_doc, "Error").validate({"error": "teapot", "detail": ""})


def test_usage_event_schema_matches_the_decoder_contract(ingest_doc: dict[str, Any]) -> None:
    """UsageEvent requires the five core fields and takes epoch ms or an RFC 3339 time."""
    schema = ingest_doc["components"]["schemas"]["UsageEvent"]
    assert set(schema["required"]) == {
        "event_id", "ts", "model", "prompt_tokens", "completion_tokens",
    }  # fmt: skip
    check = validator(ingest_doc, "UsageEvent")
    event = {"event_id": "e", "ts": 1_763_474_587_000, "model": "m", "prompt_tokens": 1,
             "completion_tokens": 2, "unknown": "ignored"}  # fmt: skip
    check.validate(event)
    check.validate({**event, "ts": "2026-11-18T14:03:07Z"})
    with pytest.raises(ValidationError):
        check.validate({**event, "calls": 0})


def test_an_app_board_names_its_member_app_and_its_unranked_tokens(
    read_doc: dict[str, Any],
) -> None:
    """App rows are named ``app``; the board's ``unranked_tokens`` (events without an app)
    is declared, and left out of the other dimensions' boards."""
    row = {
        "rank": 1, "app": "support-bot", "name": "support-bot", "tokens": 10,
        "prompt_tokens": 8, "completion_tokens": 2, "calls": 1, "cost_micro_usd": 7,
        "unpriced_tokens": 2, "share_pct": 50.0, "spend_share_pct": 70.0, "prev_tokens": None,
        "prev_rank": None, "wow_pct": None, "prev_cost_micro_usd": None, "spend_wow_pct": None,
        "move": "new",
    }  # fmt: skip
    board = {
        "dimension": "app", "by": "spend", "week": "2026-W47", "previous_week": "2026-W46",
        "has_previous": False, "total_tokens": 20, "unranked_tokens": 10,
        "total_cost_micro_usd": 10, "unpriced_tokens": 2, "ranked": 1, "unpriced_members": 0,
        "rows": [row],
    }  # fmt: skip
    body = msgspec.json.decode(schemas.encode(schemas.to_struct(board, schemas.Leaderboard)))
    assert body == board
    validator(read_doc, "Leaderboard").validate(body)
    assert read_doc["paths"]["/v1/leaderboard/{dimension}"]["get"]["parameters"][0]["schema"][
        "enum"
    ] == ["model", "country", "vendor", "app"]


def test_the_json_export_is_the_documented_export_body(read_doc: dict[str, Any]) -> None:
    """aggregations.export's JSON converts to the Export Struct unchanged and validates."""
    row = {
        "rank": 1, "model": "m/1", "name": "M1", "vendor": "V", "country": "CN",
        "tokens": 2**62, "prompt_tokens": 2**62, "completion_tokens": 0, "calls": 1,
        "cost_micro_usd": 2**62 + 1, "unpriced_tokens": 0, "share_pct": 100.0,
        "spend_share_pct": 100.0, "prev_tokens": None, "prev_rank": None, "wow_pct": None,
        "prev_cost_micro_usd": None, "spend_wow_pct": None, "move": "new",
    }  # fmt: skip
    board = {
        "dimension": "model", "by": "tokens", "week": "2026-W47", "previous_week": "2026-W46",
        "has_previous": False, "total_tokens": 2**62, "total_cost_micro_usd": 2**62 + 1,
        "unpriced_tokens": 0, "ranked": 1, "unpriced_members": 0, "rows": [row],
    }  # fmt: skip
    exported = msgspec.json.decode(encode_export(board, "json"))
    converted = schemas.to_struct(exported, schemas.Export)
    assert msgspec.json.decode(schemas.encode(converted)) == exported
    validator(read_doc, "Export").validate(exported)
    content = read_doc["paths"]["/v1/export/{dimension}"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"application/json", "text/csv", "application/vnd.apache.parquet"}
