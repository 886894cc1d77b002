"""Pure core of tokenboard: ISO weeks, rankings, growth, prices, the weekly report, alerts.

Nothing in this package performs I/O or reads the environment; the shell in ``streams/``
feeds it plain values.
"""

from aggregations.alerts import late_correction_alert, week_alerts
from aggregations.catalog import Catalog, ModelInfo
from aggregations.events import InvalidEvent, UsageEvent, decode_event
from aggregations.growth import growth_streak, leader_streak, wow_pct
from aggregations.prices import PriceBook, event_cost, format_usd
from aggregations.rankings import Ranked, rank, rank_changes, rank_of
from aggregations.report import (
    ModelMeta,
    WeekData,
    build_report,
    format_pct,
    format_tokens,
    render_text,
)
from aggregations.weeks import (
    day_id,
    next_week,
    parse_week,
    previous_week,
    week_end_ms,
    week_id,
    week_start_ms,
)

__all__ = [
    "Catalog",
    "InvalidEvent",
    "ModelInfo",
    "ModelMeta",
    "PriceBook",
    "Ranked",
    "UsageEvent",
    "WeekData",
    "build_report",
    "day_id",
    "decode_event",
    "event_cost",
    "format_pct",
    "format_tokens",
    "format_usd",
    "growth_streak",
    "late_correction_alert",
    "leader_streak",
    "next_week",
    "parse_week",
    "previous_week",
    "rank",
    "rank_changes",
    "rank_of",
    "render_text",
    "week_alerts",
    "week_end_ms",
    "week_id",
    "week_start_ms",
    "wow_pct",
]
