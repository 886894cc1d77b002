"""When a delivery is retried, and how long to wait before the next attempt (pure).

- 2xx: delivered.
- 429 and 5xx, a refused connection, a timeout: retried with exponential backoff, up to the
  target's ``max_attempts``; a ``Retry-After`` the target sends is honoured up to
  ``backoff_max_s``.
- any other answer (4xx but 429, an unfollowed 3xx): permanent, dead-lettered at once: the
  same request would be refused again.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Literal

__all__ = ["Verdict", "backoff_delay", "parse_retry_after", "verdict"]

Verdict = Literal["delivered", "retry", "permanent"]


def verdict(status: int) -> Verdict:
    """What an HTTP answer's status means for the delivery."""
    if 200 <= status < 300:
        return "delivered"
    if status == 429 or status >= 500:
        return "retry"
    return "permanent"


def backoff_delay(
    failures: int,
    initial_s: float,
    max_s: float,
    retry_after_s: float | None = None,
    spread: float = 1.0,
) -> float:
    """Seconds to wait after the ``failures``-th failed attempt (1, 2, ...).

    ``initial_s * 2 ** (failures - 1)``, capped at ``max_s``, then scaled into
    ``[half, whole]`` by ``spread`` (0..1, random in production) so that targets failing
    together do not retry in lockstep. A target's ``Retry-After`` raises the wait, never
    above ``max_s``.
    """
    base = min(max_s, initial_s * 2.0 ** min(failures - 1, 62))
    delay = base * (0.5 + 0.5 * min(max(spread, 0.0), 1.0))
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, max_s))
    return delay


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """A ``Retry-After`` header in seconds: delta-seconds or an HTTP date (None: unreadable)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
