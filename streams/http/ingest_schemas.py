"""The ingest gateway's bodies as msgspec Structs, from which its OpenAPI schemas are generated.

The response Structs are what :mod:`streams.http.ingest` encodes. ``UsageEvent`` and
``CloudEvent`` only describe the request body: events are decoded and validated by
:func:`aggregations.events.decode_batch`, whose rules (bounds, rejection codes) these
declarations restate from the same constants.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from aggregations.events import MAX_COUNT, RejectReason

__all__ = [
    "REQUEST_TYPES",
    "RESPONSE_TYPES",
    "AcceptedResult",
    "CloudEvent",
    "Error",
    "ErrorCode",
    "IngestResponse",
    "InternalError",
    "RejectedResult",
    "UsageEvent",
    "encode",
]

MIN_EPOCH_MS = 100_000_000_000
MAX_EPOCH_MS = 253_402_300_799_999
MAX_TEXT = 256

ErrorCode = Literal[
    "unauthorized",
    "payload_too_large",
    "unsupported_media_type",
    "rate_limited",
    "kafka_unavailable",
    "not_found",
    "method_not_allowed",
]


def _count(description: str, minimum: int = 0) -> Meta:
    return Meta(ge=minimum, le=MAX_COUNT, description=description)


def _text(description: str) -> Meta:
    return Meta(description=description)


Text = Annotated[str, Meta(max_length=MAX_TEXT)]
# msgspec documents a datetime as a bare string.
DateTime = Annotated[datetime, Meta(extra_json_schema={"format": "date-time"})]
Index = Annotated[
    int,
    Meta(
        ge=0,
        description="0-based position of the event in the array, or among the non-empty"
        " NDJSON lines.",
    ),
]


# Request (documentation only) -------------------------------------------------------------
class UsageEvent(Struct, kw_only=True):
    """One LLM call, or a rollup of `calls` calls. Unknown fields are ignored.

    `reasoning_tokens` are part of `completion_tokens` and `cached_tokens` part of
    `prompt_tokens`; the leaderboard counts prompt_tokens + completion_tokens.
    """

    event_id: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_TEXT,
            description="Unique id; events with an id already counted are dropped, so"
            " retrying a send is always safe.",
        ),
    ]
    ts: Annotated[
        Annotated[int, Meta(ge=MIN_EPOCH_MS, le=MAX_EPOCH_MS)] | DateTime,
        Meta(
            description="When the call happened: epoch milliseconds or an RFC 3339 time with"
            " an offset. At most 24 h ahead of the gateway's clock."
        ),
    ]
    model: Annotated[str, Meta(min_length=1, max_length=MAX_TEXT, examples=["openai/gpt-5.1"])]
    prompt_tokens: Annotated[int, _count("Input tokens, cached ones included.")]
    completion_tokens: Annotated[int, _count("Output tokens, reasoning ones included.")]
    reasoning_tokens: Annotated[int, _count("Part of completion_tokens spent reasoning.")] = 0
    cached_tokens: Annotated[int, _count("Part of prompt_tokens served from a cache.")] = 0
    calls: Annotated[int, _count("Calls rolled up in this event.", minimum=1)] = 1
    vendor: Annotated[Text | None, _text("Overrides the catalog's vendor of the model.")] = None
    country: Annotated[
        Annotated[str, Meta(pattern="^[A-Za-z]{2}$")] | None,
        _text("ISO 3166-1 alpha-2 code; overrides the catalog's country."),
    ] = None
    app: Annotated[Text | None, _text("Free-form name of the calling application.")] = None
    region: Annotated[Text | None, _text("Free-form region of the caller.")] = None


class CloudEvent(Struct, kw_only=True):
    """A structured-mode CloudEvent whose `data` is a UsageEvent.

    `id` and `time` fill a missing `event_id` and `ts`. `data_base64` is not supported.
    """

    specversion: Annotated[str, Meta(examples=["1.0"])]
    id: str | UnsetType = UNSET
    time: DateTime | UnsetType = UNSET
    type: str | UnsetType = UNSET
    source: str | UnsetType = UNSET
    datacontenttype: Annotated[str, Meta(examples=["application/json"])] | UnsetType = UNSET
    data: UsageEvent


# Responses -------------------------------------------------------------------------------
class Body(Struct, forbid_unknown_fields=True):
    """Base of the closed bodies the gateway builds."""


class AcceptedResult(Body, tag_field="status", tag="accepted"):
    """The event at `index` was acknowledged by Kafka."""

    index: Index
    event_id: str


class RejectedResult(Body, tag_field="status", tag="rejected"):
    """The event at `index` was rejected: `reason` says why, `field` which field if any."""

    index: Index
    reason: RejectReason
    detail: str
    field: str | None


class IngestResponse(Body):
    """Per-event verdicts of a request whose body was read."""

    accepted: Annotated[int, Meta(ge=0)]
    rejected: Annotated[int, Meta(ge=0)]
    results: list[AcceptedResult | RejectedResult]


class Error(Body, kw_only=True):
    """A request refused as a whole; `accepted` (always 0) comes with a 503."""

    error: ErrorCode
    detail: str
    accepted: Literal[0] | UnsetType = UNSET


class InternalError(Body):
    """A 500: a bug. The same error id is in the gateway's log, next to the traceback."""

    error: Literal["internal_error"]
    detail: str
    error_id: Annotated[str, Meta(pattern=r"^[0-9a-f]{32}$")]


REQUEST_TYPES: tuple[type[Struct], ...] = (UsageEvent, CloudEvent)
RESPONSE_TYPES: tuple[type[Struct], ...] = (IngestResponse, Error, InternalError)

_encoder = msgspec.json.Encoder()


def encode(value: Struct) -> bytes:
    """The JSON of a response body."""
    return _encoder.encode(value)
