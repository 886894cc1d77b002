"""ISO-week tumbling windows for the peers that can align them, and the check of their sums.

Bytewax and Flink SQL take an alignment for tumbling windows, so their 7-day windows can
run from Monday 00:00 UTC like tokenboard's ISO weeks (Faust's and Quix's cannot: theirs
start on the epoch's Thursday). A peer that processed every event reports one
``(window start ms, model, tokens)`` row per window; :func:`check_windows` compares them
with the (week, model) totals the dataset computed while it was generated.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from aggregations.weeks import DAY_MS, WEEK_MS, week_id, week_start_ms

#: 1970-01-01 was a Thursday: windows of 7 days counted from the epoch start on Thursdays,
#: and shifting them by the 4 days to Monday 1970-01-05 makes every one an ISO week.
ISO_WEEK_OFFSET_MS = 4 * DAY_MS
#: The same Monday as an instant, for APIs that align windows to a datetime (Bytewax).
ISO_WEEK_ALIGN = datetime(1970, 1, 5, tzinfo=UTC)


def tumble_start_ms(ts_ms: int, size_ms: int, offset_ms: int = 0) -> int:
    """Start of the tumbling window holding ``ts_ms``, as Flink assigns it.

    Flink's ``TimeWindow.getWindowStartWithOffset`` is
    ``ts - (ts - offset + size) % size``; Python's ``%`` is never negative, so the
    ``+ size`` that Java needs for instants before the offset is not needed here.
    """
    return ts_ms - (ts_ms - offset_ms) % size_ms


def aligned_window_start_ms(window_id: int, size_ms: int = WEEK_MS) -> int:
    """Start of Bytewax's window ``window_id`` (windows counted from :data:`ISO_WEEK_ALIGN`)."""
    return int(ISO_WEEK_ALIGN.timestamp() * 1000) + window_id * size_ms


def check_windows(
    rows: Iterable[tuple[int, str, int]], expected: dict[tuple[str, str], int]
) -> tuple[bool, str]:
    """Whether the window sums equal the dataset's (week, model) totals, and a note saying so.

    A window that does not start on a Monday 00:00 UTC counts as wrong, so a misaligned
    window (the epoch's Thursday) cannot pass by adding up to the right week.
    """
    cells: dict[tuple[str, str], int] = {}
    misaligned = 0
    for start_ms, model, tokens in rows:
        week = week_id(start_ms)
        if week_start_ms(week) != start_ms:
            misaligned += 1
        cells[(week, model)] = cells.get((week, model), 0) + tokens
    if misaligned:
        return False, f"{misaligned:,} windows do not start on Monday 00:00 UTC"
    differ = sorted(k for k in expected.keys() | cells.keys() if cells.get(k) != expected.get(k))
    if differ:
        week, model = differ[0]
        return False, (
            f"{len(differ):,} of {len(expected):,} (week, model) sums differ from the "
            f"dataset's, e.g. {week} {model}: {cells.get((week, model), 0):,} tokens, "
            f"expected {expected.get((week, model), 0):,}"
        )
    return True, f"all {len(cells):,} (ISO week, model) window sums equal the dataset's"
