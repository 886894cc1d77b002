"""Rank fields: when a week is ranked again, and the values written to the member hashes."""

from __future__ import annotations

from aggregations.rankings import Ranked
from streams.leader.rank_fields import (
    RANK_REFRESH_S,
    adds_up,
    board_totals,
    fingerprint,
    member_fields,
    rank_due,
    total_fields,
)

TOTALS = {"2026-W45": 100, "2026-W46": 150, "2026-W47": 300, "2026-W48": 10}


def test_fingerprint_is_deterministic() -> None:
    """The same board sizes and totals give the same fingerprint."""
    assert fingerprint([3, 2, 1], TOTALS, "2026-W47") == fingerprint([3, 2, 1], TOTALS, "2026-W47")


def test_fingerprint_follows_board_sizes() -> None:
    """A member joining one of the week's boards changes the fingerprint."""
    assert fingerprint([3, 2, 1], TOTALS, "2026-W47") != fingerprint([3, 3, 1], TOTALS, "2026-W47")


def test_fingerprint_follows_earlier_totals() -> None:
    """A change to an earlier week's total (growth streak, WoW) changes the fingerprint."""
    earlier = {**TOTALS, "2026-W45": 101}
    assert fingerprint([3, 2, 1], TOTALS, "2026-W47") != fingerprint([3, 2, 1], earlier, "2026-W47")


def test_fingerprint_ignores_later_weeks() -> None:
    """A later week's total does not make an earlier week's ranks stale."""
    later = {**TOTALS, "2026-W48": 999_999}
    assert fingerprint([3, 2, 1], TOTALS, "2026-W47") == fingerprint([3, 2, 1], later, "2026-W47")


def test_rank_due_never_ranked() -> None:
    """A week without a recorded fingerprint is ranked, whenever it was last ranked."""
    assert rank_due(None, "f", ranked_at=100.0, now=100.0)


def test_rank_due_unchanged() -> None:
    """A week whose data has the recorded fingerprint is not ranked again."""
    assert not rank_due("f", "f", ranked_at=0.0, now=1_000.0)


def test_rank_due_throttled_while_changing() -> None:
    """Changed data is ranked again only RANK_REFRESH_S after the last ranking."""
    assert not rank_due("old", "new", ranked_at=100.0, now=100.0 + RANK_REFRESH_S - 0.1)
    assert rank_due("old", "new", ranked_at=100.0, now=100.0 + RANK_REFRESH_S)


def test_rank_due_incomplete_data_is_ranked_again() -> None:
    """An empty recorded fingerprint (incomplete data) counts as changed, throttled too."""
    assert rank_due("", "f", ranked_at=0.0, now=RANK_REFRESH_S)
    assert not rank_due("", "f", ranked_at=10.0, now=10.0)


def test_adds_up() -> None:
    """A board adds up when its members' tokens are exactly the week's total."""
    board = [Ranked(1, "a", 70), Ranked(2, "b", 30)]
    assert adds_up(board, 100)
    assert not adds_up(board, 101)
    assert not adds_up(board[:1], 100)


def test_adds_up_without_total() -> None:
    """A week without a total adds up only for an empty board."""
    assert adds_up([], None)
    assert not adds_up([Ranked(1, "a", 1)], None)


def test_member_fields_with_last_week() -> None:
    """A member on last week's board gets its previous rank, tokens and WoW rounded to 4."""
    fields = member_fields(Ranked(1, "a", 200), Ranked(3, "a", 150))
    assert fields == {"rank": 1, "prev_rank": 3, "prev_tokens": 150, "wow_pct": 33.3333}


def test_member_fields_new_member() -> None:
    """A member not on last week's board gets empty previous fields."""
    fields = member_fields(Ranked(2, "b", 50), None)
    assert fields == {"rank": 2, "prev_rank": "", "prev_tokens": "", "wow_pct": ""}


def test_total_fields() -> None:
    """The total hash gets the growth streak, last week's total and WoW."""
    assert total_fields(TOTALS, "2026-W47") == {
        "growth_streak": 2,
        "prev_tokens": 150,
        "wow_pct": 100.0,
    }


def test_total_fields_first_week() -> None:
    """A week without a previous week's total has no streak and empty previous fields."""
    assert total_fields(TOTALS, "2026-W45") == {
        "growth_streak": 0,
        "prev_tokens": "",
        "wow_pct": "",
    }


def test_board_totals_leave_the_unranked_member_out_of_the_app_board() -> None:
    """The app board of a complete week holds the total less the no-app member's tokens;
    the other boards hold the whole total."""
    expected = board_totals(100, {"app": 30})
    assert expected == {"model": 100, "country": 100, "vendor": 100, "app": 70}
    assert adds_up([Ranked(1, "support-bot", 50), Ranked(2, "coder", 20)], expected["app"])


def test_board_totals_while_the_unranked_hash_is_missing() -> None:
    """No no-app hash (yet, or no event without an app): the app board holds the total."""
    assert board_totals(100, {"app": None})["app"] == 100
    assert board_totals(100, {})["app"] == 100
    # A week without a total: only an empty board adds up, whatever the dimension.
    assert board_totals(None, {"app": None}) == {
        "model": None, "country": None, "vendor": None, "app": 0,
    }  # fmt: skip


def test_a_stale_no_app_count_makes_the_app_board_incomplete() -> None:
    """Counts only grow: a no-app hash behind its total (another worker's write not landed)
    cannot add up with the app board, so the week's ranks are recorded as incomplete."""
    board = [Ranked(1, "support-bot", 70)]
    assert adds_up(board, board_totals(100, {"app": 30})["app"])
    assert not adds_up(board, board_totals(100, {"app": 20})["app"])
