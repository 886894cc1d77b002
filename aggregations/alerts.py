"""Alerts raised when a week closes, and the alert for late events that corrected a closed week.

Every alert is a JSON-ready dict ``{"id", "type": "alert", "kind", "week", "subject",
"message", ...kind-specific fields}``. The id is a sha1 over what identifies the alert (kind,
week, subject and, for streaks and leader changes, the streak or the two leaders) but not over
token counts, so that recomputing a week after a small correction yields the same id and
consumers keep one alert per fact.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any, Literal

from aggregations.growth import growth_streak, leader_streak, wow_pct
from aggregations.rankings import rank
from aggregations.report import (
    ModelMeta,
    WeekData,
    country_label,
    format_pct,
    format_tokens,
    ordinal,
)
from aggregations.weeks import parse_week, previous_week

__all__ = ["AlertKind", "alert_id", "late_correction_alert", "week_alerts"]

AlertKind = Literal[
    "surge",
    "drop",
    "growth_streak",
    "country_growth_streak",
    "leader_change",
    "leader_streak",
    "new_model_at_top",
    "late_correction",
]


def alert_id(kind: AlertKind, week: str, *identity: object) -> str:
    """Return the deterministic id (sha1 hex) of an alert from its identifying content."""
    payload = json.dumps(
        ["alert", kind, week, *identity], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()


def _alert(
    kind: AlertKind,
    week: str,
    subject: str,
    message: str,
    identity: Sequence[object],
    **fields: Any,
) -> dict[str, Any]:
    return {
        "id": alert_id(kind, week, *identity),
        "type": "alert",
        "kind": kind,
        "week": week,
        "subject": subject,
        "message": message,
        **fields,
    }


def _name(meta: Mapping[str, ModelMeta], model: str) -> str:
    info = meta.get(model)
    return info.name if info is not None else model


def _model_moves(
    week: str,
    current: Mapping[str, int],
    previous: Mapping[str, int],
    meta: Mapping[str, ModelMeta],
    top_n: int,
    surge_pct: float,
) -> list[dict[str, Any]]:
    # Both top Ns: a model that collapsed out of this week's top N is the interesting drop.
    candidates = {row.member for row in rank(current)[:top_n]}
    candidates |= {row.member for row in rank(previous)[:top_n]}
    threshold = Fraction(surge_pct)
    found: list[tuple[float, str, dict[str, Any]]] = []
    for model in candidates:
        tokens = current.get(model, 0)
        before = previous.get(model, 0)
        pct = wow_pct(tokens, before if before > 0 else None)
        if pct is None:
            continue
        # Exact comparison: the float wow of 100 -> 120 is 19.999999999999996, not 20.
        change = (Fraction(tokens, before) - 1) * 100
        name = _name(meta, model)
        if change >= threshold:
            kind: AlertKind = "surge"
            message = f"{name} surged {format_pct(pct)} week over week to {format_tokens(tokens)}."
        elif change <= -threshold:
            kind = "drop"
            message = f"{name} fell {-pct:.1f}% week over week to {format_tokens(tokens)}."
        else:
            continue
        alert = _alert(
            kind,
            week,
            model,
            message,
            (model,),
            tokens=tokens,
            prev_tokens=before,
            wow_pct=pct,
        )
        found.append((-abs(pct), model, alert))
    # Surges before drops, the largest moves first, ties by model id for a stable order.
    found.sort(key=lambda item: (item[2]["kind"] != "surge", item[0], item[1]))
    return [alert for _, _, alert in found]


def week_alerts(
    week: str,
    history: Mapping[str, WeekData],
    meta: Mapping[str, ModelMeta],
    *,
    top_n: int = 10,
    surge_pct: float = 50.0,
) -> list[dict[str, Any]]:
    """Compute the alerts of ``week`` once it has closed, from ``history`` (week -> WeekData).

    Kinds, in output order: ``leader_change``, ``leader_streak``, ``growth_streak``,
    ``country_growth_streak``, ``new_model_at_top``, ``surge``, ``drop``. Comparisons with the
    previous week are skipped when that week is absent from ``history``: no data is not the
    same as no traffic.
    """
    parse_week(week)
    if not 0 < surge_pct < math.inf:
        raise ValueError(f"surge_pct must be > 0 and finite, got {surge_pct}")
    current = history.get(week) or WeekData(week, 0, {}, {})
    previous = history.get(previous_week(week))
    alerts: list[dict[str, Any]] = []

    countries_by_week = {w: d.countries for w, d in history.items()}
    country_ranking = rank(current.countries)
    prev_country_ranking = rank(previous.countries) if previous is not None else []
    if country_ranking and prev_country_ranking:
        new, old = country_ranking[0], prev_country_ranking[0]
        if new.member != old.member:
            alerts.append(
                _alert(
                    "leader_change",
                    week,
                    new.member,
                    f"{country_label(new.member)} overtook {country_label(old.member)}"
                    " as the #1 country by tokens.",
                    (old.member, new.member),
                    old=old.member,
                    new=new.member,
                    tokens=new.tokens,
                    old_tokens=current.countries.get(old.member, 0),
                )
            )

    leader, held = leader_streak(countries_by_week, week)
    if leader is not None and held >= 2:
        alerts.append(
            _alert(
                "leader_streak",
                week,
                leader,
                f"{country_label(leader)} has been the #1 country for {held} straight weeks.",
                (leader, held),
                streak=held,
                tokens=current.countries.get(leader, 0),
            )
        )

    totals = {w: d.total for w, d in history.items()}
    streak = growth_streak(totals, week)
    if streak >= 2:
        pct = wow_pct(current.total, totals.get(previous_week(week)))
        alerts.append(
            _alert(
                "growth_streak",
                week,
                "total",
                f"Global token usage grew for the {ordinal(streak)} consecutive week,"
                f" to {format_tokens(current.total)} ({format_pct(pct)}).",
                ("total", streak),
                streak=streak,
                tokens=current.total,
                wow_pct=pct,
            )
        )

    for row in country_ranking:
        by_week = {w: c.get(row.member, 0) for w, c in countries_by_week.items()}
        country_streak = growth_streak(by_week, week)
        if country_streak >= 2:
            pct = wow_pct(row.tokens, by_week.get(previous_week(week)))
            alerts.append(
                _alert(
                    "country_growth_streak",
                    week,
                    row.member,
                    f"{country_label(row.member)} grew for the {ordinal(country_streak)}"
                    f" consecutive week, to {format_tokens(row.tokens)} ({format_pct(pct)}).",
                    (row.member, country_streak),
                    streak=country_streak,
                    tokens=row.tokens,
                    wow_pct=pct,
                )
            )

    model_ranking = rank(current.models)
    if model_ranking and previous is not None:
        top = model_ranking[0]
        if previous.models.get(top.member, 0) <= 0:
            alerts.append(
                _alert(
                    "new_model_at_top",
                    week,
                    top.member,
                    f"{_name(meta, top.member)} is the #1 model with {format_tokens(top.tokens)}"
                    " tokens after no traffic the week before.",
                    (top.member,),
                    tokens=top.tokens,
                )
            )

    if previous is not None:
        alerts.extend(_model_moves(week, current.models, previous.models, meta, top_n, surge_pct))
    return alerts


def late_correction_alert(
    week: str, dimension: str, late_events: int, tokens: int
) -> dict[str, Any]:
    """Return the alert for ``late_events`` events (``tokens`` tokens) that reached a closed week.

    The id covers only ``(week, late_events)``: one late batch corrects every dimension, so
    the same batch reported for several dimensions is one alert.
    """
    events = "1 late event" if late_events == 1 else f"{late_events} late events"
    return _alert(
        "late_correction",
        week,
        dimension,
        f"{events} for {week} arrived after the week closed;"
        f" {dimension} totals corrected by {format_tokens(tokens)} tokens.",
        (late_events,),
        dimension=dimension,
        late_events=late_events,
        tokens=tokens,
    )
