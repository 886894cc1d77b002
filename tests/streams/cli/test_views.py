"""Terminal views: the leaderboard and history tables people read."""

from __future__ import annotations

from typing import Any

from streams.cli.views import render_history, render_leaderboard, table


def board(**overrides: Any) -> dict[str, Any]:
    """A model leaderboard shaped like streams.store.queries.leaderboard's answer."""
    value: dict[str, Any] = {
        "dimension": "model",
        "week": "2026-W47",
        "previous_week": "2026-W46",
        "has_previous": True,
        "by": "tokens",
        "ranked": 57,
        "unpriced_members": 56,
        "total_tokens": 28_900_000_000_000,
        "total_cost_micro_usd": 5_000_000_000_000,
        "unpriced_tokens": 27_950_000_000_000,
        "rows": [
            {
                "rank": 1, "move": "↑1", "model": "deepseek/deepseek-v4-flash",
                "name": "DeepSeek-V4-Flash", "vendor": "DeepSeek", "country": "CN",
                "tokens": 3_430_000_000_000, "wow_pct": 66.0, "share_pct": 11.87,
                "cost_micro_usd": None, "unpriced_tokens": 3_430_000_000_000,
                "spend_share_pct": None, "spend_wow_pct": None,
            },
            {
                "rank": 2, "move": "↓1", "model": "x-ai/grok-5", "name": "Grok 5",
                "vendor": "xAI", "country": "US", "tokens": 950_000_000_000, "wow_pct": -3.25,
                "share_pct": 3.29, "cost_micro_usd": 5_000_000_000_000, "unpriced_tokens": 0,
                "spend_share_pct": 100.0, "spend_wow_pct": 12.0,
            },
        ],
    }  # fmt: skip
    value.update(overrides)
    return value


def test_table_aligns_columns_and_right_aligns_numbers() -> None:
    """Columns two spaces apart, the right-aligned ones padded on the left, no trailing blanks."""
    text = table(["name", "n"], [["a", "1"], ["bbb", "22"]], right={1})
    assert text.splitlines() == ["name   n", "a      1", "bbb   22"]


def test_leaderboard_shows_units_arrows_and_shares() -> None:
    """The table reads like the weekly report: 3.43T, +66.0%, ↑1, shares with one decimal;
    the spend next to the tokens, ``unknown`` (never $0) for a model without a price."""
    text = render_leaderboard(board())
    head, _, header, first, second = text.splitlines()
    assert head == "2026-W47 · top 2 models of 57 · total 28.9T"
    assert header.split() == [
        "#", "move", "model", "vendor", "country", "tokens", "spend", "WoW", "share",
    ]  # fmt: skip
    assert first.split() == ["1", "↑1", "DeepSeek-V4-Flash", "DeepSeek", "CN", "3.43T",
                             "unknown", "+66.0%", "11.9%"]  # fmt: skip
    assert second.split()[-4:] == ["950B", "$5M", "-3.2%", "3.3%"]


def test_a_board_by_spend_shows_spend_first_and_what_had_no_price() -> None:
    """By spend: the cost, its WoW and share of the known spend; a lower bound reads ≥; the
    head gives the spend and the tokens and members without a price."""
    row = {
        "rank": 1, "move": "new", "model": "x-ai/grok-5", "name": "Grok 5", "vendor": "xAI",
        "country": "US", "tokens": 950_000_000_000, "wow_pct": -3.25, "share_pct": 3.29,
        "cost_micro_usd": 12_345_000_000, "unpriced_tokens": 10, "spend_share_pct": 99.5,
        "spend_wow_pct": 20.0,
    }  # fmt: skip
    text = render_leaderboard(board(by="spend", rows=[row], ranked=1))
    head, _, header, first = text.splitlines()
    assert head == (
        "2026-W47 · top 1 models by spend of 1 with a price · spend ≥$5M"
        " · 27.95T tokens without a price (56 models without any)"
    )
    assert header.split() == [
        "#", "move", "model", "vendor", "country", "spend", "tokens", "WoW", "share",
    ]  # fmt: skip
    assert first.split() == ["1", "new", "Grok", "5", "xAI", "US", "≥$12.3k", "950B", "+20.0%",
                             "99.5%"]  # fmt: skip


def test_leaderboard_without_a_previous_week_shows_no_moves() -> None:
    """With no data for the week before, moves and WoW are dashes and the head says why."""
    text = render_leaderboard(board(has_previous=False))
    assert text.splitlines()[0].endswith("· no data for 2026-W46")
    assert text.splitlines()[3].split()[1] == "–"


def test_history_marks_new_weeks_and_missing_ranks() -> None:
    """A model's first week after a known empty week reads `new`; an unranked week `–`."""
    series = {
        "dimension": "model", "model": "m/x", "name": "X", "vendor": "V", "country": "US",
        "weeks": [
            {"week": "2026-W45", "tokens": 0, "wow_pct": None, "rank": None, "share_pct": None},
            {"week": "2026-W46", "tokens": 5_000, "wow_pct": None, "rank": 9, "share_pct": 0.5},
            {"week": "2026-W47", "tokens": 7_500, "wow_pct": 50.0, "rank": 4, "share_pct": 1.0},
        ],
    }  # fmt: skip
    lines = render_history(series).splitlines()
    assert lines[0] == "X (m/x) · V · US"
    assert lines[3].split() == ["2026-W45", "0", "–", "–", "–"]
    assert lines[4].split() == ["2026-W46", "5K", "new", "#9", "0.5%"]
    assert lines[5].split() == ["2026-W47", "7.5K", "+50.0%", "#4", "1.0%"]


def test_an_app_board_shows_apps_and_the_unranked_tokens() -> None:
    """App rows show the app; the head says how many tokens had no app (not ranked)."""
    row = {"rank": 1, "move": "new", "app": "support-bot", "name": "support-bot",
           "tokens": 2_000_000, "wow_pct": None, "share_pct": 40.0, "cost_micro_usd": 420_000,
           "unpriced_tokens": 0, "spend_share_pct": 50.0, "spend_wow_pct": None}  # fmt: skip
    text = render_leaderboard(
        board(dimension="app", rows=[row], ranked=1, total_tokens=5_000_000,
              unranked_tokens=3_000_000)
    )  # fmt: skip
    head, _, header, first = text.splitlines()
    assert head == "2026-W47 · top 1 apps of 1 · total 5M · (no app) 3M, not ranked"
    assert header.split() == ["#", "move", "app", "tokens", "spend", "WoW", "share"]
    assert first.split() == ["1", "new", "support-bot", "2M", "$0.42", "new", "40.0%"]
