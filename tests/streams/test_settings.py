"""Settings: read once from TOKENBOARD_* variables, validated when built."""

from __future__ import annotations

import dataclasses

import pytest

from aggregations.errors import InvalidInput
from streams.settings import BOUNDS, Settings, env_documentation


def test_defaults_are_valid_and_round_trip_through_the_environment() -> None:
    """to_env() of any settings rebuilds the same settings in a child process."""
    settings = Settings().replace(partitions=3, surge_pct=12.5, topic_prefix="x")
    assert Settings.from_env(settings.to_env()) == settings


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_every_bounded_setting_refuses_a_value_below_or_above_its_range(name: str) -> None:
    """A value just outside the bounds raises InvalidInput naming the variable."""
    low, high = BOUNDS[name]
    kind = type(getattr(Settings(), name))
    outside = [v for v in (None if low is None else low - 1, None if high is None else high + 1)]
    for value in (v for v in outside if v is not None):
        with pytest.raises(InvalidInput, match=f"TOKENBOARD_{name.upper()}="):
            Settings().replace(**{name: kind(value)})


def test_bounds_name_real_numeric_fields() -> None:
    """Every bounded name is a numeric field of Settings (a typo would check nothing)."""
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    assert all(name in fields and fields[name].type in ("int", "float") for name in BOUNDS)


def test_an_unknown_security_protocol_is_refused() -> None:
    """TOKENBOARD_KAFKA_SECURITY_PROTOCOL must be one Kafka knows."""
    with pytest.raises(InvalidInput, match="KAFKA_SECURITY_PROTOCOL"):
        Settings.from_env({"TOKENBOARD_KAFKA_SECURITY_PROTOCOL": "TLS"})


def test_worker_web_port_zero_and_negative_are_allowed() -> None:
    """0 takes any free port and a negative port disables the health server."""
    assert Settings().replace(worker_web_port=0).worker_web_port == 0
    assert Settings().replace(worker_web_port=-1).worker_web_port == -1


def test_env_documentation_lists_every_field_once() -> None:
    """`tokenboard env` prints each variable once with its default."""
    names = [name for name, _ in env_documentation()]
    assert len(names) == len(set(names)) == len(dataclasses.fields(Settings))
