"""The weekly report: a JSON-ready contract built from weekly totals, and its text digest.

``build_report`` is the single source of the report's numbers; ``render_text`` only phrases
what is in the report dict, so the HTTP API, the CLI and the published digest always agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aggregations.catalog import UNKNOWN_COUNTRY, UNKNOWN_VENDOR
from aggregations.growth import growth_streak, leader_streak, wow_pct
from aggregations.prices import cost_text, known_cost
from aggregations.rankings import rank, rank_of
from aggregations.weeks import parse_week, previous_week

__all__ = [
    "COUNTRY_NAMES",
    "ModelMeta",
    "WeekData",
    "build_report",
    "country_label",
    "format_pct",
    "format_tokens",
    "ordinal",
    "rank_move",
    "render_text",
]


COUNTRY_NAMES: Mapping[str, str] = {
    "AE": "United Arab Emirates",
    "AU": "Australia",
    "BR": "Brazil",
    "CA": "Canada",
    "CH": "Switzerland",
    "CN": "China",
    "DE": "Germany",
    "ES": "Spain",
    "FI": "Finland",
    "FR": "France",
    "GB": "United Kingdom",
    "HK": "Hong Kong",
    "IE": "Ireland",
    "IL": "Israel",
    "IN": "India",
    "IT": "Italy",
    "JP": "Japan",
    "KR": "South Korea",
    "NL": "Netherlands",
    "NO": "Norway",
    "PL": "Poland",
    "RU": "Russia",
    "SA": "Saudi Arabia",
    "SE": "Sweden",
    "SG": "Singapore",
    "TW": "Taiwan",
    "US": "United States",
    "VN": "Vietnam",
}

_UNITS: Sequence[tuple[int, str]] = ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K"))


@dataclass(frozen=True, slots=True)
class ModelMeta:
    """Display metadata of a model: its name, vendor and vendor country (ISO alpha-2)."""

    name: str
    vendor: str
    country: str


@dataclass(frozen=True, slots=True)
class WeekData:
    """One week's totals: global tokens and tokens per model and per country with traffic.

    Spend (only the reported week needs it): ``cost`` in micro-dollars of the priced
    tokens, ``unpriced`` tokens without a price (None: no cost data, every token unpriced)
    and per country (cost, unpriced tokens); a country missing there has no priced token.
    """

    week: str
    total: int
    models: Mapping[str, int]
    countries: Mapping[str, int]
    cost: int = 0
    unpriced: int | None = None
    country_spend: Mapping[str, tuple[int, int]] = field(default_factory=dict)


def _positive(value: int | None) -> int | None:
    # A member listed with 0 tokens had no traffic; report it like an absent member.
    return value if value is not None and value > 0 else None


def _prev_tokens(previous: Mapping[str, int] | None, member: str) -> int | None:
    return None if previous is None else _positive(previous.get(member))


def build_report(
    week: str,
    history: Mapping[str, WeekData],
    meta: Mapping[str, ModelMeta],
    top_n: int = 10,
) -> dict[str, Any]:
    """Build the weekly report of ``week`` from ``history`` (week id -> WeekData).

    ``history`` must hold the previous week for week-over-week figures and the weeks before
    it for streaks; a week absent from it counts as no data. Models without metadata are
    shown by id with vendor ``unknown`` and country ``ZZ``. ``dropped`` and ``entered`` also
    carry the model ``name`` so that the digest can name models outside this week's top N.
    """
    parse_week(week)
    if top_n < 0:
        raise ValueError(f"top_n must be >= 0, got {top_n}")
    current = history.get(week) or WeekData(week, 0, {}, {})
    previous = history.get(previous_week(week))
    prev_models = previous.models if previous is not None else None
    prev_countries = previous.countries if previous is not None else None

    def name_of(model: str) -> str:
        info = meta.get(model)
        return info.name if info is not None else model

    prev_total = previous.total if previous is not None else None
    total = {
        "tokens": current.total,
        "prev_tokens": prev_total,
        "wow_pct": wow_pct(current.total, prev_total),
        "growth_streak": growth_streak({w: d.total for w, d in history.items()}, week),
    }

    countries = []
    for row in rank(current.countries):
        before = _prev_tokens(prev_countries, row.member)
        countries.append(
            {
                "country": row.member,
                "tokens": row.tokens,
                "prev_tokens": before,
                "wow_pct": wow_pct(row.tokens, before),
                "rank": row.rank,
            }
        )
    leader, streak = leader_streak({w: d.countries for w, d in history.items()}, week)

    ranking = rank(current.models)
    ranks = rank_of(ranking)
    prev_ranking = rank(prev_models or {})
    prev_ranks = rank_of(prev_ranking)
    top = ranking[:top_n]
    prev_top = prev_ranking[:top_n]

    models = []
    for row in top:
        info = meta.get(row.member)
        before = _prev_tokens(prev_models, row.member)
        models.append(
            {
                "rank": row.rank,
                "model": row.member,
                "name": name_of(row.member),
                "vendor": info.vendor if info is not None else UNKNOWN_VENDOR,
                "country": info.country if info is not None else UNKNOWN_COUNTRY,
                "tokens": row.tokens,
                "prev_tokens": before,
                "wow_pct": wow_pct(row.tokens, before),
                "prev_rank": prev_ranks.get(row.member),
            }
        )

    top_members = {row.member for row in top}
    prev_top_members = {row.member for row in prev_top}
    dropped = [
        {
            "model": row.member,
            "name": name_of(row.member),
            "prev_rank": row.rank,
            "rank": ranks.get(row.member),
        }
        for row in prev_top
        if row.member not in top_members
    ]
    entered = [
        {
            "model": row.member,
            "name": name_of(row.member),
            "rank": row.rank,
            "prev_rank": prev_ranks.get(row.member),
        }
        for row in top
        if row.member not in prev_top_members
    ]

    return {
        "week": week,
        "top_n": top_n,
        "total": total,
        "countries": countries,
        "leader": {"country": leader, "streak": streak},
        "models": models,
        "dropped": dropped,
        "entered": entered,
        "spend": _spend(current, countries),
    }


def _pct(part: int | None, whole: int | None) -> float | None:
    return part / whole * 100 if part is not None and whole else None


def _spend(current: WeekData, countries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The week's spend: its cost (None: no token had a price), the tokens without a price
    and each country's cost and shares of the known spend and of the tokens, in the order
    of ``countries``. A country's cost is unknown when none of its tokens had a price."""
    unpriced = current.total if current.unpriced is None else current.unpriced
    cost = known_cost(current.cost, unpriced, current.total)
    rows = []
    for row in countries:
        code, tokens = row["country"], row["tokens"]
        country_cost, country_unpriced = current.country_spend.get(code, (0, tokens))
        shown = known_cost(country_cost, country_unpriced, tokens)
        rows.append(
            {
                "country": code,
                "cost_micro_usd": shown,
                "unpriced_tokens": country_unpriced,
                "spend_share_pct": _pct(shown, cost),
                "token_share_pct": _pct(tokens, current.total),
            }
        )
    return {
        "cost_micro_usd": cost,
        "unpriced_tokens": unpriced,
        "unpriced_pct": _pct(unpriced, current.total),
        "countries": rows,
    }


def format_tokens(n: int) -> str:
    """Format a token count compactly: ``28.9T``, ``2.066T``, ``950B``, ``12K``, ``999``.

    Up to three decimals, rounded half up, trailing zeros stripped; a value that rounds to
    1000 of a unit moves to the next unit (``999_999_600`` is ``1B``, not ``1000M``).
    """
    sign = "-" if n < 0 else ""
    size = abs(n)
    for index, (unit, suffix) in enumerate(_UNITS):
        if size < unit:
            continue
        # Integer arithmetic: floats would misround values such as 2_066_000_000_000.
        thousandths = (size * 1000 + unit // 2) // unit
        if thousandths >= 1_000_000 and index > 0:
            unit, suffix = _UNITS[index - 1]
            thousandths = (size * 1000 + unit // 2) // unit
        whole, fraction = divmod(thousandths, 1000)
        digits = f"{fraction:03d}".rstrip("0")
        return f"{sign}{whole}{'.' + digits if digits else ''}{suffix}"
    return f"{sign}{size}"


def format_pct(p: float | None) -> str:
    """Format a week-over-week percentage with one decimal and a sign; None is ``new``."""
    if p is None:
        return "new"
    rounded = round(p, 1)
    # Avoid "-0.0%": a change that rounds to nothing is shown as "+0.0%".
    return f"{rounded if rounded != 0 else 0.0:+.1f}%"


def rank_move(rank: int | None, prev_rank: int | None) -> str:
    """Describe a rank change: ``↑3``, ``↓2``, ``=``, ``new`` (no prev rank), ``out`` (no rank)."""
    if prev_rank is None:
        return "new"
    if rank is None:
        return "out"
    if rank < prev_rank:
        return f"↑{prev_rank - rank}"
    if rank > prev_rank:
        return f"↓{rank - prev_rank}"
    return "="


def ordinal(n: int) -> str:
    """Return ``n`` with its English ordinal suffix: 1st, 2nd, 3rd, 4th, 11th, 21st."""
    if n % 100 in (11, 12, 13):
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


def country_label(code: str, names: Mapping[str, str] = COUNTRY_NAMES) -> str:
    """Return ``"China (CN)"`` for a known ISO code, else the code itself."""
    name = names.get(code)
    return f"{name} ({code})" if name and name != code else code


def _has_previous_week(report: Mapping[str, Any]) -> bool:
    # Without last week's data every member would read "new"; the digest says so once instead.
    return report["total"]["prev_tokens"] is not None


def _total_line(report: Mapping[str, Any]) -> str:
    total = report["total"]
    head = f"{report['week']}: {format_tokens(total['tokens'])} tokens"
    pct = total["wow_pct"]
    if pct is None:
        return f"{head}, no data for the previous week."
    streak = total["growth_streak"]
    if streak >= 2:
        run = f"the {ordinal(streak)} consecutive week of growth"
        return f"{head}, {format_pct(pct)} week over week, {run}."
    if streak == 1:
        return f"{head}, {format_pct(pct)} week over week, a first week of growth."
    trend = "flat" if pct == 0 else f"down {abs(pct):.1f}%"
    return f"{head}, {trend} week over week, no growth streak."


def _country_line(report: Mapping[str, Any], names: Mapping[str, str]) -> str | None:
    countries = report["countries"]
    if not countries:
        return None

    has_previous = _has_previous_week(report)

    def describe(row: Mapping[str, Any]) -> str:
        text = f"{country_label(row['country'], names)} {format_tokens(row['tokens'])}"
        return f"{text} ({format_pct(row['wow_pct'])})" if has_previous else text

    first = describe(countries[0])
    if len(countries) == 1:
        return f"{first} is the only country with traffic."
    second = describe(countries[1])
    streak = report["leader"]["streak"]
    if streak == 0:
        return f"{first} is level with {second} at the top."
    if streak == 1:
        return f"{first} leads {second}, its first week ahead."
    return f"{first} leads {second}, the {ordinal(streak)} straight week ahead."


def _leader_model_line(report: Mapping[str, Any]) -> str | None:
    models = report["models"]
    if not models:
        return None
    top = models[0]
    head = f"#1 {top['name']} {format_tokens(top['tokens'])}"
    if not _has_previous_week(report):
        return f"{head}."
    if top["prev_rank"] is None:
        return f"{head}, new this week."
    pct = f" ({format_pct(top['wow_pct'])})"
    if top["prev_rank"] == 1:
        return f"{head}{pct}, holding #1."
    return f"{head}{pct}, up from #{top['prev_rank']}."


def _spend_line(report: Mapping[str, Any], names: Mapping[str, str]) -> str | None:
    """``Spend ≥$16.2M (83.3% of tokens without a price): China (CN) models: spend unknown,
    31.9% of tokens; United States (US) models 100.0% of spend, 17.1% of tokens.``: the
    leading countries of the country line, by their share of the known spend and of the
    tokens. None for a report without spend (a hand-built one) or without tokens."""
    spend = report.get("spend")
    if not spend or not report["total"]["tokens"]:
        return None
    if spend["cost_micro_usd"] is None:
        return "Spend unknown: no token of the week had a price."
    head = f"Spend {cost_text(spend['cost_micro_usd'], spend['unpriced_tokens'])}"
    if spend["unpriced_tokens"]:
        head += f" ({spend['unpriced_pct']:.1f}% of tokens without a price)"
    parts = []
    for row in spend["countries"][:2]:
        label = f"{country_label(row['country'], names)} models"
        tokens = f"{row['token_share_pct']:.1f}% of tokens"
        if row["spend_share_pct"] is None:
            parts.append(f"{label}: spend unknown, {tokens}")
        else:
            parts.append(f"{label} {row['spend_share_pct']:.1f}% of spend, {tokens}")
    return f"{head}: {'; '.join(parts)}." if parts else f"{head}."


def _table(models: Sequence[Mapping[str, Any]], has_previous: bool) -> list[str]:
    header = ("#", "move", "model", "vendor", "country", "tokens", "WoW")
    right = {0, 5, 6}
    rows = [header] + [
        (
            str(m["rank"]),
            rank_move(m["rank"], m["prev_rank"]) if has_previous else "–",
            m["name"],
            m["vendor"],
            m["country"],
            format_tokens(m["tokens"]),
            format_pct(m["wow_pct"]) if has_previous else "–",
        )
        for m in models
    ]
    widths = [max(len(row[col]) for row in rows) for col in range(len(header))]
    return [
        "  ".join(
            cell.rjust(widths[col]) if col in right else cell.ljust(widths[col])
            for col, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def _model_name(row: Mapping[str, Any]) -> str:
    # A hand-built report may omit "name"; the id still identifies the model.
    return str(row.get("name") or row["model"])


def _rank_label(position: int | None) -> str:
    return "no traffic" if position is None else f"#{position}"


def _movers_lines(report: Mapping[str, Any]) -> list[str]:
    if not _has_previous_week(report):
        return []
    top_n = report["top_n"]
    lines = []
    if report["dropped"]:
        items = ", ".join(
            f"{_model_name(m)} (#{m['prev_rank']} → {_rank_label(m['rank'])})"
            for m in report["dropped"]
        )
        lines.append(f"Fell out of the top {top_n}: {items}.")
    if report["entered"]:
        items = ", ".join(
            f"{_model_name(m)} (#{m['prev_rank']} → #{m['rank']})"
            if m["prev_rank"] is not None
            else f"{_model_name(m)} (#{m['rank']}, new)"
            for m in report["entered"]
        )
        lines.append(f"New in the top {top_n}: {items}.")
    if not lines:
        lines.append(f"No changes in the top {top_n}.")
    return lines


def render_text(report: Mapping[str, Any], country_names: Mapping[str, str] | None = None) -> str:
    """Render a report from :func:`build_report` as a plain-text weekly digest.

    ``country_names`` extends or overrides :data:`COUNTRY_NAMES`; unknown codes print as-is.
    """
    names = {**COUNTRY_NAMES, **(country_names or {})}
    summary = [_total_line(report)]
    summary += [
        line
        for line in (
            _country_line(report, names),
            _leader_model_line(report),
            _spend_line(report, names),
        )
        if line is not None
    ]
    table = _table(report["models"], _has_previous_week(report)) if report["models"] else []
    sections = [summary, table, _movers_lines(report)]
    return "\n\n".join("\n".join(lines) for lines in sections if lines) + "\n"
