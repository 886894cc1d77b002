"""What an answer means for a delivery, and the backoff between attempts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.notify.retry import backoff_delay, parse_retry_after, verdict


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
        (400, "permanent"),
        (404, "permanent"),
        (410, "permanent"),
        (301, "permanent"),
    ],
)
def test_status_verdicts(status: int, expected: str) -> None:
    """2xx delivers; 429 and 5xx are retried; other 4xx and 3xx are permanent."""
    assert verdict(status) == expected


@pytest.mark.parametrize(
    ("failures", "retry_after", "expected"),
    [
        (1, None, 1.0),
        (2, None, 2.0),
        (3, None, 4.0),
        (7, None, 30.0),
        (500, None, 30.0),
        (1, 12.0, 12.0),
        (1, 999.0, 30.0),
        (4, 2.0, 8.0),
    ],
)
def test_backoff_doubles_up_to_the_cap_and_honours_retry_after(
    failures: int, retry_after: float | None, expected: float
) -> None:
    """1 s, 2 s, 4 s ... capped at the maximum; Retry-After raises the wait within the cap."""
    assert backoff_delay(failures, 1.0, 30.0, retry_after, spread=1.0) == expected


def test_spread_keeps_the_delay_between_half_and_whole() -> None:
    """Jitter never waits less than half the step nor more than the step."""
    assert backoff_delay(3, 1.0, 30.0, spread=0.0) == 2.0
    assert backoff_delay(3, 1.0, 30.0, spread=0.5) == 3.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("Wed, 02 Dec 2026 12:00:30 GMT", 30.0),
        ("Wed, 02 Dec 2026 11:00:00 GMT", 0.0),
        ("soon", None),
        (None, None),
        ("", None),
    ],
)
def test_retry_after_as_seconds_or_a_date(header: str | None, seconds: float | None) -> None:
    """Both forms HTTP allows are read; anything else is ignored."""
    now = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after(header, now) == seconds
