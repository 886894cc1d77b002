"""The read API's response bodies as msgspec Structs.

Every handler converts what :mod:`streams.store.queries` returns into one of these
(:func:`msgspec.convert` validates on the way) and encodes the Struct; the OpenAPI document
generates its ``components/schemas`` from the same classes
(:func:`streams.http.openapi_read.openapi_document`), so a body cannot drift from its schema.

Structs built by the API are closed (``forbid_unknown_fields``): a key added to a query's
result without being declared here makes the conversion fail, which the API answers with a
500, and the generated schema says ``additionalProperties: false``. Fields that only some
rows have (the member's key, which is named after its dimension, and ``vendor`` and ``country``
of models) default to :data:`msgspec.UNSET` and are then left out of the JSON, as the queries
leave them out of the dicts.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from aggregations.events import RejectReason
from aggregations.rankings import ChangeKind, Phase
from aggregations.totals import RankedDimension

__all__ = [
    "RESPONSE_TYPES",
    "Alert",
    "CountryShares",
    "DeadLetter",
    "DeadLetters",
    "Error",
    "Export",
    "Health",
    "History",
    "InternalError",
    "Leaderboard",
    "Overview",
    "RankingChange",
    "Report",
    "RollingLeaderboard",
    "WeekToDate",
    "encode",
    "to_struct",
]

WEEK_PATTERN = r"^\d{4}-W\d{2}$"
DAY_PATTERN = r"^\d{4}-\d{2}-\d{2}$"

Count = Annotated[int, Meta(ge=0)]
Rank = Annotated[int, Meta(ge=1)]
Week = Annotated[str, Meta(pattern=WEEK_PATTERN)]
Day = Annotated[str, Meta(pattern=DAY_PATTERN)]
Dimension = RankedDimension
#: A member is named after its dimension (as in the weekly report): one of these per body.
ModelId = Annotated[str, Meta(description="the model id (model boards and histories)")] | UnsetType
CountryCode = Annotated[str, Meta(description="ISO 3166-1 alpha-2 code; a model's country")]
VendorName = Annotated[str, Meta(description="the vendor; a model's vendor")]
AppName = Annotated[str, Meta(description="the app (app boards and histories)")]
Cost = Annotated[
    int,
    Meta(
        ge=0,
        description="micro-dollars (USD x 10^6) of the tokens that had a price; null when "
        "none had one (unknown, never 0); a lower bound while unpriced_tokens > 0",
    ),
]
Unpriced = Annotated[Count, Meta(description="tokens of events whose model had no price")]
Unranked = Annotated[
    Count,
    Meta(
        description="app boards only: tokens of events without an app, counted in "
        'total_tokens but on no row (the unranked member "", named "(no app)")'
    ),
]


class Body(Struct, forbid_unknown_fields=True):
    """Base of the closed bodies the API builds itself."""


# Errors and probes ---------------------------------------------------------------------
class Error(Body):
    """Any 4xx or 503 of the read API."""

    error: str
    status: int


class InternalError(Body):
    """A 500: a bug. The same error id is in the API's log, next to the traceback."""

    error: str
    status: Literal[500]
    error_id: Annotated[str, Meta(pattern=r"^[0-9a-f]{32}$")]


class Health(Body):
    """Liveness and readiness probes (``streams.http.web.health_routes``)."""

    status: str
    service: str


# Leaderboards ----------------------------------------------------------------------------
class RankedMember(Body, kw_only=True):
    """What every row of a board has: the member under its dimension's name (``model``,
    ``country``, ``vendor`` or ``app``) and its display ``name``; model rows also have the
    model's ``vendor`` and ``country``."""

    rank: Rank
    model: ModelId = UNSET
    name: str
    vendor: VendorName | UnsetType = UNSET
    country: CountryCode | UnsetType = UNSET
    app: AppName | UnsetType = UNSET
    tokens: Count
    share_pct: float | None


class LeaderboardRow(RankedMember, kw_only=True):
    """One ranked member of a week, with its counts, its cost and its move since the week
    before; ``rank``, ``prev_rank`` and ``move`` follow the board's order (``by``)."""

    prompt_tokens: Count
    completion_tokens: Count
    calls: Count
    cost_micro_usd: Cost | None
    unpriced_tokens: Unpriced
    spend_share_pct: Annotated[
        float | None, Meta(description="share of the week's known spend; null when unknown")
    ]
    prev_tokens: int | None
    prev_rank: int | None
    wow_pct: float | None
    prev_cost_micro_usd: Annotated[
        int | None, Meta(description="last week's cost (null: unknown or no traffic)")
    ]
    spend_wow_pct: Annotated[float | None, Meta(description="week-over-week change of spend")]
    move: Annotated[str, Meta(description="↑3, ↓2, =, new (rank_move)")]


class Leaderboard(Body, kw_only=True):
    """The top N of a dimension in one week, by tokens or by spend."""

    dimension: Dimension
    by: Annotated[
        Literal["tokens", "spend"],
        Meta(
            description="tokens: every member with traffic; spend: the members with a price,"
            " by cost"
        ),
    ]
    week: Week
    previous_week: Week
    has_previous: bool
    total_tokens: Count
    unranked_tokens: Unranked | UnsetType = UNSET
    total_cost_micro_usd: Cost | None
    unpriced_tokens: Unpriced
    ranked: Count
    unpriced_members: Annotated[
        Count,
        Meta(description="members with traffic but no price for any of it (on no spend board)"),
    ]
    rows: list[LeaderboardRow]


class RollingRow(RankedMember, kw_only=True):
    """One ranked member of a rolling window."""


class RollingLeaderboard(Body, kw_only=True):
    """The top N over the last days (UTC), summed from the daily boards."""

    dimension: Dimension
    from_: Day = msgspec.field(name="from")
    to: Day
    days: Rank
    total_tokens: Count
    unranked_tokens: Unranked | UnsetType = UNSET
    ranked: Count
    rows: list[RollingRow]


class ExportRow(Body, kw_only=True):
    """One member of an export: the columns of every format (aggregations.export)."""

    rank: Rank
    model: ModelId = UNSET
    country: CountryCode | UnsetType = UNSET
    vendor: VendorName | UnsetType = UNSET
    app: AppName | UnsetType = UNSET
    name: str
    tokens: Count
    prompt_tokens: Count
    completion_tokens: Count
    calls: Count
    cost_micro_usd: Cost | None
    unpriced_tokens: Unpriced
    share_pct: float | None
    spend_share_pct: float | None
    prev_rank: int | None
    prev_tokens: int | None
    wow_pct: float | None


class Export(Body, kw_only=True):
    """Every ranked member of a dimension in one week (``format=json`` of the export)."""

    dimension: Dimension
    week: Week
    total_tokens: Count
    ranked: Count
    unranked_tokens: Unranked | UnsetType = UNSET
    total_cost_micro_usd: Cost | None
    unpriced_tokens: Unpriced
    rows: list[ExportRow]


# Histories and totals ------------------------------------------------------------------------
class HistoryWeek(Body):
    """One week of a member's series; ``rank`` is null in a week without its traffic."""

    week: Week
    tokens: Count
    rank: int | None
    ranked: Count
    share_pct: float | None
    prev_tokens: int | None
    wow_pct: float | None


class History(Body, kw_only=True):
    """Weekly series of one member (named after its dimension, as board rows), oldest first."""

    dimension: Dimension
    model: ModelId = UNSET
    name: str
    vendor: VendorName | UnsetType = UNSET
    country: CountryCode | UnsetType = UNSET
    app: AppName | UnsetType = UNSET
    weeks: list[HistoryWeek]


class Total(Body):
    """The global total of a week against the week before."""

    tokens: Count
    prev_tokens: int | None
    wow_pct: float | None
    growth_streak: Count


class Overview(Body):
    """Where the pipeline stands: current week, watermark, weeks and the global total."""

    current_week: Week | None
    last_closed_week: Week | None
    watermark_ms: Count
    snapshot_at_ms: int | None
    weeks: list[Week]
    closed_weeks: list[Week]
    total: Total | None


class WeekToDate(Body, kw_only=True):
    """Week-to-date tokens against last week up to the same weekday; the member is named
    after its dimension (none for ``total``)."""

    dimension: Literal["model", "country", "vendor", "app", "total"]
    model: ModelId = UNSET
    country: CountryCode | UnsetType = UNSET
    vendor: VendorName | UnsetType = UNSET
    app: AppName | UnsetType = UNSET
    week: Week
    day: Day
    tokens: Count
    last_week_tokens: Count
    wow_pct: float | None


class CountrySeries(Body):
    """Tokens of one country, one value per week of ``CountryShares.weeks``."""

    country: str
    name: str
    tokens: list[Count]


class CountryShares(Body):
    """Tokens per country and week, for a stacked chart."""

    weeks: list[Week]
    totals: list[Count]
    countries: list[CountrySeries]


# The weekly report (aggregations.report.build_report) ---------------------------------------
class ReportCountry(Body):
    """A country of the weekly report."""

    country: str
    tokens: Count
    prev_tokens: int | None
    wow_pct: float | None
    rank: int


class ReportLeader(Body):
    """The leading country and for how many weeks in a row it led."""

    country: str | None
    streak: Count


class ReportModel(Body):
    """A model of the report's top list."""

    rank: int
    model: str
    name: str
    vendor: str
    country: str
    tokens: Count
    prev_tokens: int | None
    wow_pct: float | None
    prev_rank: int | None


class DroppedModel(Body):
    """A model of last week's top list that left it."""

    model: str
    name: str
    prev_rank: int
    rank: int | None


class EnteredModel(Body):
    """A model of this week's top list that was not in last week's."""

    model: str
    name: str
    rank: int
    prev_rank: int | None


class SpendCountry(Body):
    """A country's spend in the weekly report (the countries' order)."""

    country: str
    cost_micro_usd: Cost | None
    unpriced_tokens: Unpriced
    spend_share_pct: Annotated[float | None, Meta(description="share of the known spend")]
    token_share_pct: float | None


class ReportSpend(Body):
    """The week's spend, and each country's share of it and of the tokens."""

    cost_micro_usd: Cost | None
    unpriced_tokens: Unpriced
    unpriced_pct: Annotated[float | None, Meta(description="share of the tokens without a price")]
    countries: list[SpendCountry]


class Report(Body):
    """The weekly report (the JSON of ``tokenboard report --json``)."""

    week: Week
    top_n: Count
    total: Total
    countries: list[ReportCountry]
    leader: ReportLeader
    models: list[ReportModel]
    dropped: list[DroppedModel]
    entered: list[EnteredModel]
    spend: ReportSpend


# Dead letters (streams.sdk.dead_letters) -----------------------------------------------------
class DeadLetter(Body):
    """One event a worker rejected, as it sits on the dead-letter topic."""

    time: Annotated[str, Meta(description="when it was dead-lettered (UTC, RFC 3339)")]
    timestamp_ms: Count
    reason: Annotated[str, Meta(description="the reason code (RejectReason), from the header")]
    detail: str
    source: Annotated[
        str, Meta(description="topic/partition/offset of the rejected record (unique)")
    ]
    key: str | None
    value: Annotated[str, Meta(description="the rejected bytes as text, at most 1024 characters")]
    value_bytes: Count


class DeadLetters(Body):
    """The newest ``limit`` dead letters matching the filters, oldest first, each source once."""

    topic: str
    since: str | None
    reason: RejectReason | None
    limit: Rank
    matched: Annotated[Count, Meta(description="matching dead letters, each source once")]
    duplicates: Annotated[Count, Meta(description="repeated copies of a source, left out")]
    complete: Annotated[bool, Meta(description="false when reading stopped at a timeout")]
    dead_letters: list[DeadLetter]


# Live events (Server-Sent Events payloads; documented, not converted) ---------------------
_NAME = "added by the stream: the display name of the member or subject (which keep the id)"
_TEXT = "added by the stream: the line `tokenboard watch` prints"


class RankingChange(Struct, kw_only=True):
    """Published to the rankings topic (aggregations.rankings)."""

    id: str
    type: Literal["ranking_change"]
    kind: ChangeKind
    dimension: Dimension
    week: Week
    phase: Phase
    member: str
    old_rank: int | UnsetType | None = UNSET
    new_rank: int | UnsetType | None = UNSET
    tokens: Count | UnsetType = UNSET
    name: Annotated[str, Meta(description=_NAME)] | UnsetType = UNSET
    text: Annotated[str, Meta(description=_TEXT)] | UnsetType = UNSET


class Alert(Struct, kw_only=True):
    """Published to the alerts topic (aggregations.alerts); more fields depend on the kind."""

    id: str
    type: Literal["alert"]
    kind: str
    week: Week
    subject: Annotated[str, Meta(description="what it is about: a model id, a country code...")]
    message: str
    name: Annotated[str, Meta(description=_NAME)] | UnsetType = UNSET
    text: Annotated[str, Meta(description=_TEXT)] | UnsetType = UNSET


#: Every type the read API answers with, in the order the document lists them.
RESPONSE_TYPES: tuple[type[Struct], ...] = (
    Error,
    InternalError,
    Health,
    Leaderboard,
    RollingLeaderboard,
    Export,
    History,
    Overview,
    WeekToDate,
    CountryShares,
    Report,
    DeadLetters,
    RankingChange,
    Alert,
)

S = TypeVar("S", bound=Struct)

_encoder = msgspec.json.Encoder()


def to_struct(value: Any, kind: type[S]) -> S:
    """``value`` (a query's dict) as a ``kind``; :class:`msgspec.ValidationError` if not one."""
    return msgspec.convert(value, kind)


def encode(value: Struct) -> bytes:
    """The JSON of a response body."""
    return _encoder.encode(value)
