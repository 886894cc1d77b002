"""One readable line per published ranking change or alert."""

from __future__ import annotations

import pytest

from aggregations.describe import describe_event

CHANGE = {"type": "ranking_change", "week": "2026-W47", "dimension": "model",
          "member": "deepseek/deepseek-v4-flash", "tokens": 3_430_000_000_000}  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "old", "new", "text"),
    [
        ("new_leader", 2, 1, "★ DeepSeek-V4-Flash is the new #1 (was #2)  3.43T"),
        ("entered", None, 7, "↑ DeepSeek-V4-Flash entered at #7  3.43T"),
        ("moved_up", 5, 3, "↑ DeepSeek-V4-Flash moved up to #3 (was #5)  3.43T"),
        ("moved_down", 3, 5, "↓ DeepSeek-V4-Flash moved down to #5 (was #3)  3.43T"),
        ("dropped", 6, None, "↓ DeepSeek-V4-Flash dropped out of the top (was #6)  3.43T"),
    ],
)
def test_ranking_changes_read_as_sentences_with_arrows(
    kind: str, old: int | None, new: int | None, text: str
) -> None:
    """Each kind of change gets its arrow, its sentence and the tokens in units."""
    event = {**CHANGE, "kind": kind, "old_rank": old, "new_rank": new}
    assert describe_event(event, "DeepSeek-V4-Flash") == f"2026-W47 model    {text}"


def test_a_final_change_is_marked_and_falls_back_to_the_member_id() -> None:
    """Without a display name the member id is shown; final changes say so."""
    event = {**CHANGE, "kind": "entered", "new_rank": 1, "phase": "final"}
    assert describe_event(event).endswith(
        "deepseek/deepseek-v4-flash entered at #1  3.43T  [final]"
    )


def test_alerts_show_their_message() -> None:
    """An alert line is its week, `alert !` and the message."""
    alert = {"type": "alert", "week": "2026-W47", "kind": "surge", "message": "CN +20%"}
    assert describe_event(alert) == "2026-W47 alert    ! CN +20%"
