"""The ingest gateway's per-client token buckets, on a hand-driven clock."""

from __future__ import annotations

import pytest

from streams.http.ingest import RateLimit, RateLimiter


class Clock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """A fresh hand-driven clock."""
    return Clock()


def test_a_full_bucket_allows_a_burst_then_asks_to_wait(clock: Clock) -> None:
    """A new client gets ``burst`` requests at once; the next one waits 1/rate seconds."""
    limiter = RateLimiter(RateLimit(rate=2.0, burst=5), clock)
    assert [limiter.acquire("a") for _ in range(5)] == [0.0] * 5
    assert limiter.acquire("a") == pytest.approx(0.5)


def test_a_refused_request_takes_no_token(clock: Clock) -> None:
    """Being refused does not deepen the debt: the wait stays the same until time passes."""
    limiter = RateLimiter(RateLimit(rate=4.0, burst=1), clock)
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == pytest.approx(0.25)
    assert limiter.acquire("a") == pytest.approx(0.25)


def test_tokens_refill_at_the_rate(clock: Clock) -> None:
    """After an empty bucket, ``rate`` tokens come back per second, partial ones counting."""
    limiter = RateLimiter(RateLimit(rate=2.0, burst=5), clock)
    for _ in range(5):
        limiter.acquire("a")
    clock.now += 0.25  # half a token
    assert limiter.acquire("a") == pytest.approx(0.25)
    clock.now += 0.25
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    clock.now += 1.0  # two tokens
    assert [limiter.acquire("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("a") > 0


def test_refill_is_capped_at_the_burst(clock: Clock) -> None:
    """A long idle time refills the bucket to ``burst``, never beyond."""
    limiter = RateLimiter(RateLimit(rate=10.0, burst=3), clock)
    limiter.acquire("a")
    clock.now += 3600.0
    assert [limiter.acquire("a") for _ in range(3)] == [0.0] * 3
    assert limiter.acquire("a") == pytest.approx(0.1)


def test_clients_have_their_own_buckets(clock: Clock) -> None:
    """One client emptying its bucket does not limit another."""
    limiter = RateLimiter(RateLimit(rate=1.0, burst=2), clock)
    assert [limiter.acquire("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("a") > 0
    assert [limiter.acquire("b") for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("b") > 0


def test_the_least_recently_seen_client_is_evicted(clock: Clock) -> None:
    """Beyond ``max_clients`` the idlest bucket is dropped; that client returns with a full one."""
    limiter = RateLimiter(RateLimit(rate=1.0, burst=1, max_clients=2), clock)
    limiter.acquire("a")
    limiter.acquire("b")
    assert limiter.acquire("a") > 0  # a is now the most recently seen
    limiter.acquire("c")  # evicts b, not a
    assert limiter.acquire("b") == 0.0  # b comes back with a full bucket (and evicts a)
    assert limiter.acquire("c") > 0  # c kept its empty bucket
    assert limiter.acquire("a") == 0.0  # a was evicted by b
