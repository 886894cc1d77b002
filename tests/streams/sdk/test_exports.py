"""The SDK's public names: adding or removing one is a decision, not an accident."""

from __future__ import annotations

import streams.sdk

EXPORTED = {
    "EventTail",
    "Settings",
    "SyncUsageProducer",
    "UsageEvent",
    "UsageProducer",
    "subscribe",
}


def test_the_sdk_exports_exactly_its_public_names() -> None:
    """streams.sdk.__all__ is the pinned list, and every name in it exists."""
    assert set(streams.sdk.__all__) == EXPORTED
    assert all(hasattr(streams.sdk, name) for name in EXPORTED)


def test_public_names_carry_docstrings() -> None:
    """Every exported class and function says what it is for."""
    assert all(getattr(streams.sdk, name).__doc__ for name in EXPORTED)
