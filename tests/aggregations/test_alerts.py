"""Alerts raised when a week closes and for late corrections of a closed week."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from aggregations.alerts import alert_id, late_correction_alert, week_alerts
from aggregations.report import ModelMeta, WeekData
from aggregations.weeks import weeks_back

SEED_PATH = Path(__file__).resolve().parents[1] / "data" / "seed-2026-w47.json"

META = {
    "a/alpha": ModelMeta("Alpha", "A Lab", "US"),
    "b/beta": ModelMeta("Beta", "B Lab", "CN"),
    "c/gamma": ModelMeta("Gamma", "C Lab", "FR"),
    "d/delta": ModelMeta("Delta", "D Lab", "CN"),
}


def history(
    last_week: str, rows: list[dict[str, int]], meta: Mapping[str, ModelMeta] = META
) -> dict[str, WeekData]:
    """Consecutive weeks ending at last_week; totals and countries follow from model tokens."""
    weeks: dict[str, WeekData] = {}
    for week, row in zip(weeks_back(last_week, len(rows)), rows, strict=True):
        traffic = {model: tokens for model, tokens in row.items() if tokens > 0}
        countries: dict[str, int] = {}
        for model, tokens in traffic.items():
            countries[meta[model].country] = countries.get(meta[model].country, 0) + tokens
        weeks[week] = WeekData(week, sum(traffic.values()), traffic, countries)
    return weeks


def of_kind(alerts: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The alerts of one kind, in output order."""
    return [alert for alert in alerts if alert["kind"] == kind]


def test_surge() -> None:
    """A top-N model up by at least surge_pct raises a surge with its numbers."""
    alerts = week_alerts(
        "2026-W47", history("2026-W47", [{"a/alpha": 100}, {"a/alpha": 200}]), META
    )
    (surge,) = of_kind(alerts, "surge")
    assert surge["subject"] == "a/alpha"
    assert (surge["tokens"], surge["prev_tokens"], surge["wow_pct"]) == (200, 100, 100.0)
    assert surge["message"] == "Alpha surged +100.0% week over week to 200."
    assert surge["type"] == "alert"
    assert surge["week"] == "2026-W47"


@pytest.mark.parametrize(
    ("after", "wow"),
    [(50, -75.0), (0, -100.0)],
)
def test_drop(after: int, wow: float) -> None:
    """A model of last week's top N down by surge_pct or more, even to zero, raises a drop."""
    weeks = history("2026-W47", [{"a/alpha": 200, "b/beta": 10}, {"a/alpha": after, "b/beta": 10}])
    (drop,) = of_kind(week_alerts("2026-W47", weeks, META), "drop")
    assert (drop["subject"], drop["tokens"], drop["prev_tokens"]) == ("a/alpha", after, 200)
    assert drop["wow_pct"] == pytest.approx(wow)
    assert drop["message"].startswith(f"Alpha fell {-wow:.1f}% week over week")


@pytest.mark.parametrize(
    ("before", "after", "surge_pct", "kinds"),
    [
        (100, 150, 50.0, ["surge"]),
        (1000, 1499, 50.0, []),
        (100, 50, 50.0, ["drop"]),
        (1000, 501, 50.0, []),
        (100, 120, 20.0, ["surge"]),
        (100, 80, 20.0, ["drop"]),
    ],
)
def test_surge_threshold(before: int, after: int, surge_pct: float, kinds: list[str]) -> None:
    """Surge and drop fire at exactly +/- surge_pct and not below it."""
    weeks = history("2026-W47", [{"a/alpha": before}, {"a/alpha": after}])
    alerts = week_alerts("2026-W47", weeks, META, surge_pct=surge_pct)
    assert [a["kind"] for a in alerts if a["kind"] in ("surge", "drop")] == kinds


def test_surge_only_for_top_n_models() -> None:
    """A model outside both weeks' top N does not raise a surge."""
    weeks = history("2026-W47", [{"a/alpha": 1000, "b/beta": 10}, {"a/alpha": 1000, "b/beta": 100}])
    assert of_kind(week_alerts("2026-W47", weeks, META, top_n=1), "surge") == []
    assert len(of_kind(week_alerts("2026-W47", weeks, META, top_n=2), "surge")) == 1


def test_surges_then_drops_largest_first() -> None:
    """Surges come before drops, each ordered by the size of the move."""
    weeks = history(
        "2026-W47",
        [
            {"a/alpha": 100, "b/beta": 100, "c/gamma": 100, "d/delta": 100},
            {"a/alpha": 160, "b/beta": 300, "c/gamma": 40, "d/delta": 10},
        ],
    )
    moves = [a for a in week_alerts("2026-W47", weeks, META) if a["kind"] in ("surge", "drop")]
    assert [(a["kind"], a["subject"]) for a in moves] == [
        ("surge", "b/beta"),
        ("surge", "a/alpha"),
        ("drop", "d/delta"),
        ("drop", "c/gamma"),
    ]


@pytest.mark.parametrize(
    ("totals", "streak"),
    [([10, 20], None), ([10, 20, 30], 2), ([10, 20, 30, 40, 50], 4), ([10, 20, 30, 25], None)],
)
def test_growth_streak(totals: list[int], streak: int | None) -> None:
    """A global growth streak of two weeks or more raises a growth_streak alert."""
    weeks = history("2026-W47", [{"a/alpha": total} for total in totals])
    alerts = of_kind(week_alerts("2026-W47", weeks, META, surge_pct=1000.0), "growth_streak")
    assert [a["streak"] for a in alerts] == ([streak] if streak else [])
    if streak:
        assert alerts[0]["subject"] == "total"
        assert alerts[0]["tokens"] == totals[-1]
        assert f"for the {streak}" in alerts[0]["message"]


def test_country_growth_streak() -> None:
    """Each country growing two weeks or more in a row gets its own alert."""
    weeks = history(
        "2026-W47",
        [
            {"a/alpha": 10, "b/beta": 10, "c/gamma": 50},
            {"a/alpha": 20, "b/beta": 11, "c/gamma": 40},
            {"a/alpha": 30, "b/beta": 12, "c/gamma": 60},
        ],
    )
    alerts = of_kind(week_alerts("2026-W47", weeks, META), "country_growth_streak")
    assert [(a["subject"], a["streak"]) for a in alerts] == [("US", 2), ("CN", 2)]
    assert alerts[0]["message"] == (
        "United States (US) grew for the 2nd consecutive week, to 30 (+50.0%)."
    )


def test_leader_change() -> None:
    """A different #1 country than last week raises leader_change with old and new."""
    weeks = history("2026-W47", [{"a/alpha": 30, "b/beta": 20}, {"a/alpha": 30, "b/beta": 40}])
    (change,) = of_kind(week_alerts("2026-W47", weeks, META), "leader_change")
    assert (change["subject"], change["old"], change["new"]) == ("CN", "US", "CN")
    assert (change["tokens"], change["old_tokens"]) == (40, 30)
    assert (
        change["message"] == "China (CN) overtook United States (US) as the #1 country by tokens."
    )
    assert of_kind(week_alerts("2026-W47", weeks, META), "leader_streak") == []


@pytest.mark.parametrize(("weeks_ahead", "expected"), [(1, []), (2, [2]), (5, [5])])
def test_leader_streak(weeks_ahead: int, expected: list[int]) -> None:
    """A country #1 for two weeks or more in a row raises leader_streak."""
    weeks = history("2026-W47", [{"a/alpha": 30, "b/beta": 20}] * weeks_ahead)
    alerts = of_kind(week_alerts("2026-W47", weeks, META), "leader_streak")
    assert [(a["subject"], a["streak"]) for a in alerts] == [("US", n) for n in expected]


def test_new_model_at_top() -> None:
    """A #1 model without traffic last week raises new_model_at_top."""
    weeks = history("2026-W47", [{"a/alpha": 30}, {"a/alpha": 30, "d/delta": 50}])
    (alert,) = of_kind(week_alerts("2026-W47", weeks, META), "new_model_at_top")
    assert (alert["subject"], alert["tokens"]) == ("d/delta", 50)
    assert alert["message"].startswith("Delta is the #1 model")


def test_no_previous_week_skips_comparisons() -> None:
    """Without last week's data nothing is compared: no surge, drop, leader change or new #1."""
    alerts = week_alerts("2026-W47", history("2026-W47", [{"a/alpha": 30}]), META)
    assert alerts == []


def test_alert_order_and_shape() -> None:
    """Alerts come in kind order and every alert carries the common fields as plain JSON."""
    weeks = history(
        "2026-W47",
        [
            {"a/alpha": 10, "b/beta": 5},
            {"a/alpha": 20, "b/beta": 10},
            {"a/alpha": 25, "b/beta": 12, "d/delta": 40},
        ],
    )
    alerts = week_alerts("2026-W47", weeks, META)
    assert [a["kind"] for a in alerts] == [
        "leader_change",
        "growth_streak",
        "country_growth_streak",
        "country_growth_streak",
        "new_model_at_top",
    ]
    for alert in alerts:
        assert {"id", "type", "kind", "week", "subject", "message"} <= set(alert)
        assert len(alert["id"]) == 40
    assert json.loads(json.dumps(alerts, allow_nan=False)) == alerts


def test_week_alert_ids_are_deterministic() -> None:
    """Recomputing a week gives the same ids, unique within the week."""
    rows = [{"a/alpha": 10, "b/beta": 5}, {"a/alpha": 20, "b/beta": 10}, {"a/alpha": 5}]
    first = week_alerts("2026-W47", history("2026-W47", rows), META)
    again = week_alerts("2026-W47", history("2026-W47", rows), META)
    assert [a["id"] for a in first] == [a["id"] for a in again]
    assert len({a["id"] for a in first}) == len(first) > 0


def test_week_alert_ids_differ_across_weeks_and_subjects() -> None:
    """The same fact in another week, or about another model, has a different id."""
    rows = [{"a/alpha": 100, "b/beta": 100}, {"a/alpha": 200, "b/beta": 200}]
    in_w47 = of_kind(week_alerts("2026-W47", history("2026-W47", rows), META), "surge")
    in_w48 = of_kind(week_alerts("2026-W48", history("2026-W48", rows), META), "surge")
    assert len({a["id"] for a in in_w47} | {a["id"] for a in in_w48}) == 4


def test_week_alert_id_ignores_token_corrections() -> None:
    """A small correction of the numbers keeps the alert's id (same fact, new figures)."""
    before = of_kind(
        week_alerts("2026-W47", history("2026-W47", [{"a/alpha": 100}, {"a/alpha": 200}]), META),
        "surge",
    )
    after = of_kind(
        week_alerts("2026-W47", history("2026-W47", [{"a/alpha": 100}, {"a/alpha": 201}]), META),
        "surge",
    )
    assert before[0]["id"] == after[0]["id"]
    assert before[0]["tokens"] != after[0]["tokens"]


@pytest.mark.parametrize(
    ("identity", "other"),
    [
        (("surge", "2026-W47", "a/alpha"), ("drop", "2026-W47", "a/alpha")),
        (("leader_streak", "2026-W47", "CN", 3), ("leader_streak", "2026-W47", "CN", 4)),
        (("leader_change", "2026-W47", "US", "CN"), ("leader_change", "2026-W47", "CN", "US")),
    ],
)
def test_alert_id_covers_identity(identity: tuple[Any, ...], other: tuple[Any, ...]) -> None:
    """alert_id is deterministic and changes with any identifying part."""
    assert alert_id(*identity) == alert_id(*identity)
    assert alert_id(*identity) != alert_id(*other)


def test_late_correction_alert() -> None:
    """A late correction alert names the week, the dimension and how much was corrected."""
    alert = late_correction_alert("2026-W46", "model", 12, 1_500_000)
    assert alert == {
        "id": alert_id("late_correction", "2026-W46", 12),
        "type": "alert",
        "kind": "late_correction",
        "week": "2026-W46",
        "subject": "model",
        "message": "12 late events for 2026-W46 arrived after the week closed;"
        " model totals corrected by 1.5M tokens.",
        "dimension": "model",
        "late_events": 12,
        "tokens": 1_500_000,
    }
    assert late_correction_alert("2026-W46", "total", 1, 7)["message"].startswith("1 late event ")


@pytest.mark.parametrize(
    ("other", "same"),
    [
        (("2026-W46", "model", 12, 1_500_000), True),
        (("2026-W46", "total", 12, 9), True),
        (("2026-W46", "model", 13, 1_500_000), False),
        (("2026-W45", "model", 12, 1_500_000), False),
    ],
)
def test_late_correction_id(other: tuple[str, str, int, int], same: bool) -> None:
    """The late-correction id depends only on (week, late_events)."""
    base = late_correction_alert("2026-W46", "model", 12, 1_500_000)["id"]
    assert (late_correction_alert(*other)["id"] == base) is same


@pytest.mark.parametrize(
    ("week", "surge_pct", "message"),
    [
        ("2026-W99", 50.0, "invalid week id"),
        ("2026-W47", 0.0, "surge_pct must be > 0"),
        ("2026-W47", float("inf"), "surge_pct must be > 0"),
        ("2026-W47", float("nan"), "surge_pct must be > 0"),
    ],
)
def test_week_alerts_rejects_bad_arguments(week: str, surge_pct: float, message: str) -> None:
    """A malformed week id or a non-positive threshold is refused."""
    with pytest.raises(ValueError, match=message):
        week_alerts(week, {}, META, surge_pct=surge_pct)


def test_seed_week_alerts() -> None:
    """The seed week raises the CN leader streak, the 5-week global streak and the big moves."""
    scenario = json.loads(SEED_PATH.read_text(encoding="utf-8"))
    meta = {m["id"]: ModelMeta(m["name"], m["vendor"], m["country"]) for m in scenario["models"]}
    rows = [{m["id"]: m["tokens"][i] for m in scenario["models"]} for i in range(7)]
    alerts = week_alerts("2026-W47", history("2026-W47", rows, meta), meta)
    assert [(a["kind"], a["subject"], a.get("streak")) for a in alerts] == [
        ("leader_streak", "CN", 4),
        ("growth_streak", "total", 5),
        ("country_growth_streak", "CN", 6),
        ("country_growth_streak", "FR", 2),
        ("country_growth_streak", "JP", 3),
        ("surge", "deepseek/deepseek-v4-flash", None),
        ("drop", "moonshotai/kimi-k2.6", None),
    ]
    assert of_kind(alerts, "surge")[0]["wow_pct"] == pytest.approx(66.02, abs=0.01)
