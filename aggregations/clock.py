"""The pipeline's clock: event time, never ahead of the wall clock by more than a minute.

Events may carry times up to a day ahead (``Limits.max_future_ms``): producers' clocks drift,
and a rollup may be stamped with its period's end. Such an event is counted in its own week,
but it must not move the pipeline's clock: the current week, retention and week closing all
count from the watermark, and one producer with a skewed clock would move them for everyone.
So every watermark is the largest event time seen, bounded by the wall clock of the process
that saw it plus :data:`MAX_LEAD_MS`; it catches up with the event once the clock does (at the
next event).
"""

from __future__ import annotations

#: How far the watermark may run ahead of the wall clock (clock skew between honest hosts).
MAX_LEAD_MS = 60_000


def watermark_cap(now_ms: int) -> int:
    """The largest watermark a process whose wall clock reads ``now_ms`` may set."""
    return now_ms + MAX_LEAD_MS


def bounded_event_time(ts_ms: int, now_ms: int) -> int:
    """``ts_ms`` as far as the watermark may advance on it at wall-clock time ``now_ms``."""
    return min(ts_ms, now_ms + MAX_LEAD_MS)
