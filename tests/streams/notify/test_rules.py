"""Severity levels, the dimension an event is about, and the per-target filters."""

from __future__ import annotations

from typing import Any

import pytest

from aggregations.alerts import late_correction_alert
from aggregations.rankings import Ranked, rank_changes
from streams.notify.rules import KINDS, SEVERITIES, Filters, event_dimension, severity_of


def change(**overrides: Any) -> dict[str, Any]:
    """A ranking change as the leader publishes it, with some fields replaced."""
    (event,) = [
        e
        for e in rank_changes("model", "2026-W47", [], [Ranked(1, "a/m", 10)], 10, "live")
        if e["kind"] == "new_leader"
    ]
    return {**event, **overrides}


def alert(kind: str, **fields: Any) -> dict[str, Any]:
    """An alert of ``kind``."""
    return {"id": "x", "type": "alert", "kind": kind, "week": "2026-W47", "subject": "CN", **fields}


@pytest.mark.parametrize(
    ("kind", "severity"),
    [
        ("moved_up", "info"),
        ("entered", "info"),
        ("dropped", "info"),
        ("growth_streak", "info"),
        ("new_leader", "notice"),
        ("leader_change", "notice"),
        ("surge", "notice"),
        ("drop", "notice"),
        ("late_correction", "warning"),
        ("some_future_kind", "info"),
    ],
)
def test_severity_follows_the_kind(kind: str, severity: str) -> None:
    """Routine moves are info, changes at the top notice, corrections warning."""
    assert severity_of({"kind": kind}) == severity


def test_every_published_kind_has_a_severity_level() -> None:
    """Each kind the pipeline publishes maps to one of the three levels."""
    assert {severity_of({"kind": k}) for k in KINDS} == set(SEVERITIES)


@pytest.mark.parametrize(
    ("event", "dimension"),
    [
        (change(), "model"),
        (change(dimension="country"), "country"),
        (alert("surge", subject="openai/gpt-5.1"), "model"),
        (alert("leader_change"), "country"),
        (alert("growth_streak", subject="total"), "total"),
        (late_correction_alert("2026-W47", "vendor", 3, 100), "vendor"),
    ],
)
def test_the_dimension_of_changes_and_alerts(event: dict[str, Any], dimension: str) -> None:
    """Changes name theirs; an alert's is its subject's (a late correction's, the one fixed)."""
    assert event_dimension(event) == dimension


@pytest.mark.parametrize(
    ("filters", "event", "accepted"),
    [
        (Filters(), change(), True),
        (Filters(kinds=frozenset({"surge"})), change(), False),
        (Filters(kinds=frozenset({"new_leader"})), change(), True),
        (Filters(dimensions=frozenset({"country"})), change(), False),
        (Filters(dimensions=frozenset({"country"})), alert("leader_streak"), True),
        (Filters(phases=frozenset({"final"})), change(), False),
        (Filters(phases=frozenset({"final"})), change(phase="final"), True),
        (Filters(phases=frozenset({"final"})), alert("surge"), True),
        (Filters(min_severity="notice"), change(kind="moved_up"), False),
        (Filters(min_severity="notice"), change(), True),
        (Filters(min_severity="warning"), change(), False),
        (Filters(min_severity="warning"), alert("late_correction", dimension="model"), True),
    ],
)
def test_filters(filters: Filters, event: dict[str, Any], accepted: bool) -> None:
    """A target gets an event only when it passes every filter it sets."""
    assert filters.accepts(event) is accepted
