"""Redis key names: one prefix, one spelling per key, members may contain colons."""

from __future__ import annotations

import pytest

from streams.store.keys import RedisKeys

KEYS = RedisKeys("tb")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (KEYS.leaderboard("model", "2026-W47"), "tb:lb:model:2026-W47"),
        (KEYS.spend_board("model", "2026-W47"), "tb:spend:model:2026-W47"),
        (
            KEYS.member("model", "2026-W47", "openai/gpt-5:beta"),
            "tb:m:model:2026-W47:openai/gpt-5:beta",
        ),
        (KEYS.total("2026-W47"), "tb:total:2026-W47"),
        (KEYS.daily("country", "2026-11-22"), "tb:day:country:2026-11-22"),
        (KEYS.published("vendor", "2026-W47"), "tb:published:vendor:2026-W47"),
        (KEYS.weeks, "tb:weeks"),
        (KEYS.closed_weeks, "tb:weeks:closed"),
        (KEYS.current_week, "tb:week:current"),
        (KEYS.watermark, "tb:watermark"),
        (KEYS.progress, "tb:progress"),
        (KEYS.ranker_marker, "tb:ranker:mirror"),
        (KEYS.writer_marker("host-1"), "tb:writer:host-1"),
    ],
)
def test_key_names_match_the_documented_schema(key: str, expected: str) -> None:
    """Each builder gives the key ARCHITECTURE.md's Redis key schema names."""
    assert key == expected


def test_the_prefix_separates_deployments() -> None:
    """Two prefixes never share a key."""
    assert RedisKeys("a").total("2026-W47") != RedisKeys("b").total("2026-W47")
