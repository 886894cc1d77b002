"""The weekly report contract, its number formats and the text digest."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from aggregations.report import (
    ModelMeta,
    WeekData,
    build_report,
    format_pct,
    format_tokens,
    ordinal,
    rank_move,
    render_text,
)
from aggregations.weeks import weeks_back

SEED_PATH = Path(__file__).resolve().parents[1] / "data" / "seed-2026-w47.json"

META = {
    "a/alpha": ModelMeta("Alpha", "A Lab", "US"),
    "b/beta": ModelMeta("Beta", "B Lab", "CN"),
    "c/gamma": ModelMeta("Gamma", "C Lab", "FR"),
    "d/delta": ModelMeta("Delta", "D Lab", "CN"),
}


def week_data(week: str, models: Mapping[str, int], meta: Mapping[str, ModelMeta]) -> WeekData:
    """WeekData whose total and country sums follow from per-model tokens and metadata."""
    traffic = {model: tokens for model, tokens in models.items() if tokens > 0}
    countries: dict[str, int] = {}
    for model, tokens in traffic.items():
        country = meta[model].country if model in meta else "ZZ"
        countries[country] = countries.get(country, 0) + tokens
    return WeekData(week, sum(traffic.values()), traffic, countries)


def history(
    last_week: str, rows: list[dict[str, int]], meta: Mapping[str, ModelMeta] = META
) -> dict[str, WeekData]:
    """History of consecutive weeks ending at last_week, one row of model tokens per week."""
    weeks = weeks_back(last_week, len(rows))
    return {week: week_data(week, row, meta) for week, row in zip(weeks, rows, strict=True)}


@pytest.fixture(scope="module")
def seed() -> tuple[dict[str, WeekData], dict[str, ModelMeta]]:
    """History and model metadata of the seed scenario (weeks 2026-W41..W47)."""
    scenario = json.loads(SEED_PATH.read_text(encoding="utf-8"))
    meta = {m["id"]: ModelMeta(m["name"], m["vendor"], m["country"]) for m in scenario["models"]}
    rows = [
        {m["id"]: m["tokens"][index] for m in scenario["models"]}
        for index in range(len(scenario["weeks"]))
    ]
    return history(scenario["weeks"][-1], rows, meta), meta


@pytest.fixture(scope="module")
def seed_report(seed: tuple[dict[str, WeekData], dict[str, ModelMeta]]) -> dict[str, Any]:
    """The 2026-W47 report of the seed scenario, top 10."""
    weeks, meta = seed
    return build_report("2026-W47", weeks, meta, top_n=10)


def pick(report: Mapping[str, Any], path: str) -> Any:
    """Follow a dotted path such as 'countries.0.tokens' into the report."""
    value: Any = report
    for part in path.split("."):
        value = value[int(part)] if part.isdigit() else value[part]
    return value


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("week", "2026-W47"),
        ("top_n", 10),
        ("total.tokens", 28_900_000_000_000),
        ("total.wow_pct", 7.40),
        ("total.growth_streak", 5),
        ("countries.0.country", "CN"),
        ("countries.0.rank", 1),
        ("countries.0.tokens", 9_223_000_000_000),
        ("countries.0.wow_pct", 19.78),
        ("countries.1.country", "US"),
        ("countries.1.rank", 2),
        ("countries.1.tokens", 4_930_000_000_000),
        ("countries.1.wow_pct", 16.00),
        ("leader.country", "CN"),
        ("leader.streak", 4),
        ("models.0.rank", 1),
        ("models.0.model", "deepseek/deepseek-v4-flash"),
        ("models.0.name", "DeepSeek-V4-Flash"),
        ("models.0.tokens", 3_430_000_000_000),
        ("models.0.wow_pct", 66.02),
        ("models.0.prev_rank", 2),
        ("models.1.model", "tencent/hy3-preview"),
        ("models.1.name", "Hy3 preview"),
        ("models.1.tokens", 3_070_000_000_000),
        ("models.1.wow_pct", 15.98),
        ("models.1.prev_rank", 1),
        ("dropped.0.model", "moonshotai/kimi-k2.6"),
        ("dropped.0.prev_rank", 6),
    ],
)
def test_seed_week_facts(seed_report: dict[str, Any], path: str, expected: object) -> None:
    """Each fact of the seed table (scenarios README) is reproduced by the 2026-W47 report."""
    value = pick(seed_report, path)
    if isinstance(expected, float):
        assert value == pytest.approx(expected, abs=0.01)
    else:
        assert value == expected


def test_seed_week_movers(seed_report: dict[str, Any]) -> None:
    """KimiK2.6 is the only model to leave the top 10 and MiniMax-M3 the only one to enter."""
    assert seed_report["dropped"] == [
        {"model": "moonshotai/kimi-k2.6", "name": "KimiK2.6", "prev_rank": 6, "rank": 56}
    ]
    assert seed_report["entered"] == [
        {"model": "minimax/minimax-m3", "name": "MiniMax-M3", "rank": 10, "prev_rank": 11}
    ]


def test_seed_report_shape(seed_report: dict[str, Any]) -> None:
    """The report has exactly the contract's keys at every level and is plain JSON."""
    assert list(seed_report) == [
        "week",
        "top_n",
        "total",
        "countries",
        "leader",
        "models",
        "dropped",
        "entered",
        "spend",
    ]
    assert set(seed_report["total"]) == {"tokens", "prev_tokens", "wow_pct", "growth_streak"}
    assert list(seed_report["spend"]) == [
        "cost_micro_usd", "unpriced_tokens", "unpriced_pct", "countries",
    ]  # fmt: skip
    assert {frozenset(c) for c in seed_report["spend"]["countries"]} == {
        frozenset(
            {"country", "cost_micro_usd", "unpriced_tokens", "spend_share_pct", "token_share_pct"}
        )
    }
    assert [c["country"] for c in seed_report["spend"]["countries"]] == [
        c["country"] for c in seed_report["countries"]
    ]
    assert {frozenset(c) for c in seed_report["countries"]} == {
        frozenset({"country", "tokens", "prev_tokens", "wow_pct", "rank"})
    }
    assert set(seed_report["leader"]) == {"country", "streak"}
    assert {frozenset(m) for m in seed_report["models"]} == {
        frozenset(
            {"rank", "model", "name", "vendor", "country", "tokens", "prev_tokens", "wow_pct"}
            | {"prev_rank"}
        )
    }
    assert len(seed_report["models"]) == 10
    assert [m["rank"] for m in seed_report["models"]] == list(range(1, 11))
    assert [c["rank"] for c in seed_report["countries"]] == list(range(1, 13))
    assert json.loads(json.dumps(seed_report, allow_nan=False)) == seed_report


def test_ranking_ties_break_by_id() -> None:
    """Equal tokens rank by model id (and country code) ascending."""
    weeks = history("2026-W47", [{"b/beta": 5, "a/alpha": 5, "c/gamma": 5}])
    report = build_report("2026-W47", weeks, META)
    assert [m["model"] for m in report["models"]] == ["a/alpha", "b/beta", "c/gamma"]
    assert [c["country"] for c in report["countries"]] == ["CN", "FR", "US"]


def test_model_new_this_week() -> None:
    """A model without traffic last week has no prev tokens, wow or prev rank, and 'entered'."""
    weeks = history("2026-W47", [{"a/alpha": 10}, {"a/alpha": 10, "b/beta": 20}])
    report = build_report("2026-W47", weeks, META)
    top = report["models"][0]
    assert (top["model"], top["prev_tokens"], top["wow_pct"], top["prev_rank"]) == (
        "b/beta",
        None,
        None,
        None,
    )
    assert report["entered"] == [{"model": "b/beta", "name": "Beta", "rank": 1, "prev_rank": None}]
    assert report["countries"][0] == {
        "country": "CN",
        "tokens": 20,
        "prev_tokens": None,
        "wow_pct": None,
        "rank": 1,
    }
    assert "#1 Beta 20, new this week." in render_text(report)


def test_global_decline() -> None:
    """A week below the previous one has a negative wow and no growth streak."""
    weeks = history("2026-W47", [{"a/alpha": 100}, {"a/alpha": 200}, {"a/alpha": 150}])
    report = build_report("2026-W47", weeks, META)
    assert report["total"]["wow_pct"] == pytest.approx(-25.0)
    assert report["total"]["growth_streak"] == 0
    assert render_text(report).splitlines()[0] == (
        "2026-W47: 150 tokens, down 25.0% week over week, no growth streak."
    )


def test_country_leader_change() -> None:
    """A country that takes the lead this week has a leader streak of 1."""
    weeks = history(
        "2026-W47",
        [
            {"a/alpha": 30, "b/beta": 10},
            {"a/alpha": 30, "b/beta": 20},
            {"a/alpha": 30, "b/beta": 40},
        ],
    )
    report = build_report("2026-W47", weeks, META)
    assert report["leader"] == {"country": "CN", "streak": 1}
    assert "China (CN) 40 (+100.0%) leads United States (US) 30 (+0.0%), its first week ahead." in (
        render_text(report)
    )


def test_tie_at_the_top_of_countries() -> None:
    """Two countries level at #1 give a leader streak of 0 and are reported as level."""
    weeks = history("2026-W47", [{"a/alpha": 10, "b/beta": 10}, {"a/alpha": 30, "b/beta": 30}])
    report = build_report("2026-W47", weeks, META)
    assert report["leader"] == {"country": "CN", "streak": 0}
    assert "is level with United States (US) 30 (+200.0%) at the top." in render_text(report)


def test_no_previous_week() -> None:
    """Without last week's data every prev_* and wow is None and all of the top N 'entered'."""
    weeks = history("2026-W47", [{"a/alpha": 10, "b/beta": 20}])
    report = build_report("2026-W47", weeks, META)
    assert report["total"] == {
        "tokens": 30,
        "prev_tokens": None,
        "wow_pct": None,
        "growth_streak": 0,
    }
    assert all(c["prev_tokens"] is None and c["wow_pct"] is None for c in report["countries"])
    assert all(
        m["prev_tokens"] is None and m["wow_pct"] is None and m["prev_rank"] is None
        for m in report["models"]
    )
    assert report["dropped"] == []
    assert [e["model"] for e in report["entered"]] == ["b/beta", "a/alpha"]
    text = render_text(report)
    assert text.startswith("2026-W47: 30 tokens, no data for the previous week.\n")
    assert "new" not in text
    assert "New in the top" not in text


def test_week_without_any_data() -> None:
    """A week absent from history reports zero tokens and empty lists."""
    report = build_report("2026-W47", {}, META)
    assert report["total"] == {
        "tokens": 0,
        "prev_tokens": None,
        "wow_pct": None,
        "growth_streak": 0,
    }
    assert report["countries"] == report["models"] == report["dropped"] == report["entered"] == []
    assert report["leader"] == {"country": None, "streak": 0}
    assert render_text(report) == "2026-W47: 0 tokens, no data for the previous week.\n"


def test_missing_meta_defaults() -> None:
    """A model without metadata is shown by id, vendor 'unknown', country 'ZZ'."""
    weeks = history("2026-W47", [{"x/mystery": 7}])
    model = build_report("2026-W47", weeks, {})["models"][0]
    assert (model["name"], model["vendor"], model["country"]) == ("x/mystery", "unknown", "ZZ")


def test_zero_tokens_last_week_counts_as_absent() -> None:
    """A member listed with 0 tokens last week has prev_tokens None, not 0."""
    weeks = {
        "2026-W46": WeekData("2026-W46", 5, {"a/alpha": 5, "b/beta": 0}, {"US": 5, "CN": 0}),
        "2026-W47": WeekData("2026-W47", 9, {"a/alpha": 5, "b/beta": 4}, {"US": 5, "CN": 4}),
    }
    report = build_report("2026-W47", weeks, META)
    beta = report["models"][1]
    assert (beta["prev_tokens"], beta["wow_pct"], beta["prev_rank"]) == (None, None, None)
    assert report["countries"][1]["prev_tokens"] is None


def test_dropped_ranks_are_among_all_models() -> None:
    """dropped/entered ranks are positions among all ranked models, None without traffic."""
    weeks = history(
        "2026-W47",
        [
            {"a/alpha": 40, "b/beta": 30, "c/gamma": 20, "d/delta": 10},
            {"a/alpha": 40, "c/gamma": 35, "d/delta": 50},
        ],
    )
    report = build_report("2026-W47", weeks, META, top_n=2)
    assert [m["model"] for m in report["models"]] == ["d/delta", "a/alpha"]
    assert report["dropped"] == [{"model": "b/beta", "name": "Beta", "prev_rank": 2, "rank": None}]
    assert report["entered"] == [{"model": "d/delta", "name": "Delta", "rank": 1, "prev_rank": 4}]
    text = render_text(report)
    assert "Fell out of the top 2: Beta (#2 → no traffic)." in text
    assert "New in the top 2: Delta (#4 → #1)." in text


@pytest.mark.parametrize(
    ("week", "top_n", "message"),
    [("2026-W99", 10, "invalid week id"), ("2026-W47", -1, "top_n must be >= 0")],
)
def test_build_report_rejects_bad_arguments(week: str, top_n: int, message: str) -> None:
    """A malformed week id or a negative top N is refused."""
    with pytest.raises(ValueError, match=message):
        build_report(week, {}, META, top_n=top_n)


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (28_900_000_000_000, "28.9T"),
        (9_223_000_000_000, "9.223T"),
        (4_930_000_000_000, "4.93T"),
        (3_430_000_000_000, "3.43T"),
        (2_066_000_000_000, "2.066T"),
        (950_000_000_000, "950B"),
        (1_500_000, "1.5M"),
        (12_000, "12K"),
        (999, "999"),
        (0, "0"),
        (1_000, "1K"),
        (1_234_567, "1.235M"),
        (1_234_499, "1.234M"),
        (999_999_600, "1B"),
        (999_999_499, "999.999M"),
        (2_231_284_669_619, "2.231T"),
        (12_345_000_000_000_000, "12345T"),
        (-1_500_000, "-1.5M"),
        (-999, "-999"),
    ],
)
def test_format_tokens(n: int, text: str) -> None:
    """Token counts use K/M/B/T with up to three decimals and no trailing zeros."""
    assert format_tokens(n) == text


@pytest.mark.parametrize(
    ("pct", "text"),
    [
        (7.403002824, "+7.4%"),
        (-12.0, "-12.0%"),
        (66.0234, "+66.0%"),
        (19.7792, "+19.8%"),
        (0.0, "+0.0%"),
        (-0.04, "+0.0%"),
        (-100.0, "-100.0%"),
        (None, "new"),
    ],
)
def test_format_pct(pct: float | None, text: str) -> None:
    """Percentages have a sign and one decimal; None (no previous value) reads 'new'."""
    assert format_pct(pct) == text


@pytest.mark.parametrize(
    ("rank", "prev_rank", "text"),
    [(1, 4, "↑3"), (5, 3, "↓2"), (2, 2, "="), (7, None, "new"), (None, 6, "out")],
)
def test_rank_move(rank: int | None, prev_rank: int | None, text: str) -> None:
    """Rank moves read as arrows with the distance, '=' when unchanged, 'new' without history."""
    assert rank_move(rank, prev_rank) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (1, "1st"),
        (2, "2nd"),
        (3, "3rd"),
        (4, "4th"),
        (11, "11th"),
        (12, "12th"),
        (13, "13th"),
        (21, "21st"),
        (22, "22nd"),
        (101, "101st"),
        (111, "111th"),
    ],
)
def test_ordinal(n: int, text: str) -> None:
    """English ordinal suffixes, including the 11th-13th exceptions."""
    assert ordinal(n) == text


#: List prices (USD per million input, output tokens) of the seed's priced models in 2026-W47,
#: as aggregations/data/prices.json has them; the other seed models have no price.
SEED_PRICES = {
    "anthropic/claude-sonnet-4.6": (3, 15),
    "google/gemini-3-flash": (Fraction(1, 2), 3),
    "openai/gpt-5.1": (Fraction(5, 4), 10),
    "x-ai/grok-4.1-fast": (Fraction(1, 5), Fraction(1, 2)),
}


@pytest.fixture(scope="module")
def priced_seed_report(seed: tuple[dict[str, WeekData], dict[str, ModelMeta]]) -> dict[str, Any]:
    """The seed report with the seed week's spend: each cell priced as the replay splits it
    (three quarters prompt), computed here in exact fractions."""
    weeks, meta = seed
    week = weeks["2026-W47"]
    spend: dict[str, list[int]] = {}
    cost = 0
    for model, tokens in week.models.items():
        country = meta[model].country
        bucket = spend.setdefault(country, [0, 0])
        if model not in SEED_PRICES:
            bucket[1] += tokens
            continue
        price_in, price_out = SEED_PRICES[model]
        prompt = tokens * 3 // 4
        micro = Fraction(prompt) * price_in + Fraction(tokens - prompt) * price_out
        assert micro.denominator == 1
        bucket[0] += int(micro)
        cost += int(micro)
    priced = replace(
        week,
        cost=cost,
        unpriced=sum(u for _, u in spend.values()),
        country_spend={c: (v[0], v[1]) for c, v in spend.items()},
    )
    return build_report("2026-W47", {**weeks, "2026-W47": priced}, meta, top_n=10)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("spend.cost_micro_usd", 16_242_000_000_000),
        ("spend.unpriced_tokens", 24_070_000_000_000),
        ("spend.unpriced_pct", 83.29),
        ("spend.countries.0.country", "CN"),
        ("spend.countries.0.cost_micro_usd", None),
        ("spend.countries.0.unpriced_tokens", 9_223_000_000_000),
        ("spend.countries.0.spend_share_pct", None),
        ("spend.countries.0.token_share_pct", 31.91),
        ("spend.countries.1.country", "US"),
        ("spend.countries.1.cost_micro_usd", 16_242_000_000_000),
        ("spend.countries.1.unpriced_tokens", 100_000_000_000),
        ("spend.countries.1.spend_share_pct", 100.0),
        ("spend.countries.1.token_share_pct", 17.06),
    ],
)
def test_seed_week_spend_facts(
    priced_seed_report: dict[str, Any], path: str, expected: object
) -> None:
    """The seed week's spend: US models all of the known spend for 17 % of the tokens, the
    Chinese models' spend unknown (no price), never 0; the other facts are untouched."""
    value = pick(priced_seed_report, path)
    if isinstance(expected, float):
        assert value == pytest.approx(expected, abs=0.01)
    else:
        assert value == expected


def test_render_seed_week_spend_line(
    seed_report: dict[str, Any], priced_seed_report: dict[str, Any]
) -> None:
    """The spend line follows the seed week's sentences, which it leaves as they were; a
    report whose week had no price says the spend is unknown rather than $0."""
    lines = render_text(priced_seed_report).splitlines()
    assert lines[:3] == render_text(seed_report).splitlines()[:3]
    assert lines[3] == (
        "Spend ≥$16.2M (83.3% of tokens without a price): China (CN) models: spend unknown,"
        " 31.9% of tokens; United States (US) models 100.0% of spend, 17.1% of tokens."
    )
    assert render_text(seed_report).splitlines()[3] == (
        "Spend unknown: no token of the week had a price."
    )
    unchanged = {k: v for k, v in priced_seed_report.items() if k != "spend"}
    assert unchanged == {k: v for k, v in seed_report.items() if k != "spend"}


def test_render_seed_week_summary(seed_report: dict[str, Any]) -> None:
    """The seed digest opens with the industry-report sentences of the seed week."""
    lines = render_text(seed_report).splitlines()
    assert lines[:3] == [
        "2026-W47: 28.9T tokens, +7.4% week over week, the 5th consecutive week of growth.",
        "China (CN) 9.223T (+19.8%) leads United States (US) 4.93T (+16.0%),"
        " the 4th straight week ahead.",
        "#1 DeepSeek-V4-Flash 3.43T (+66.0%), up from #2.",
    ]


@pytest.mark.parametrize(
    "fragment",
    [
        "28.9T",
        "+7.4%",
        "5th",
        "4th",
        "DeepSeek-V4-Flash",
        "KimiK2.6",
        "Fell out of the top 10: KimiK2.6 (#6 → #56).",
        "New in the top 10: MiniMax-M3 (#11 → #10).",
    ],
)
def test_render_seed_week_mentions(seed_report: dict[str, Any], fragment: str) -> None:
    """The seed digest names the key numbers, streaks and movers."""
    assert fragment in render_text(seed_report)


def test_render_table_is_fixed_width(seed_report: dict[str, Any]) -> None:
    """The top-N table has a header and one aligned row per model with move and WoW."""
    lines = render_text(seed_report).splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["#", "move"])
    table = lines[start : start + 11]
    assert table[1].split() == ["1", "↑1", "DeepSeek-V4-Flash", "DeepSeek", "CN", "3.43T", "+66.0%"]
    assert table[2].split()[:2] == ["2", "↓1"]
    vendor_column = table[0].index("vendor")
    assert [row[vendor_column:].split()[0] for row in table[1:4]] == [
        "DeepSeek",
        "Tencent",
        "Anthropic",
    ]
    assert len({len(line) for line in table[1:]}) == 1


def test_render_country_names() -> None:
    """Country names can be overridden; unknown codes fall back to the bare code."""
    weeks = history("2026-W47", [{"a/alpha": 10, "x/mystery": 5}])
    report = build_report("2026-W47", weeks, META)
    assert "United States (US) 10 leads ZZ 5" in render_text(report)
    assert "USA (US) 10 leads Unknown (ZZ) 5" in render_text(report, {"US": "USA", "ZZ": "Unknown"})


@pytest.mark.parametrize(
    ("totals", "phrase"),
    [
        ([100, 200], "+100.0% week over week, a first week of growth."),
        ([300, 100, 200], "+100.0% week over week, a first week of growth."),
        ([100, 200, 300], "+50.0% week over week, the 2nd consecutive week of growth."),
        ([100, 100], "flat week over week, no growth streak."),
    ],
)
def test_render_growth_phrases(totals: list[int], phrase: str) -> None:
    """The opening sentence adapts to the length of the growth streak."""
    weeks = history("2026-W47", [{"a/alpha": total} for total in totals])
    assert render_text(build_report("2026-W47", weeks, META)).splitlines()[0].endswith(phrase)


def test_render_unchanged_top() -> None:
    """A week with the same top N as last week says so and keeps the leader line short."""
    weeks = history("2026-W47", [{"a/alpha": 10, "b/beta": 5}, {"a/alpha": 12, "b/beta": 6}])
    text = render_text(build_report("2026-W47", weeks, META))
    assert "#1 Alpha 12 (+20.0%), holding #1." in text
    assert text.endswith("No changes in the top 10.\n")
