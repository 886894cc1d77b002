"""The notify config file: TOML or JSON, every key checked, defaults and overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aggregations.errors import InvalidInput
from streams.notify.config import load_config, parse_config
from streams.notify.rules import Filters

TOML = """
max_attempts = 3
backoff_initial_s = 0.5

[[targets]]
name = "ops-slack"
kind = "slack"
url = "https://hooks.slack.com/services/T0/B0/secret"
filters = { kinds = ["new_leader", "surge"], dimensions = ["model"], min_severity = "notice" }

[[targets]]
name = "audit"
kind = "webhook"
url = "http://127.0.0.1:9000/hook"
headers = { Authorization = "Bearer xyz" }
max_attempts = 8
start = "earliest"
"""


def make_target(**overrides: Any) -> dict[str, Any]:
    """A valid target entry with some fields replaced."""
    return {"name": "t1", "kind": "webhook", "url": "https://example.com/hook", **overrides}


def test_a_toml_file_gives_targets_with_defaults_and_overrides(tmp_path: Path) -> None:
    """Top-level policy keys are defaults; a target's own keys win."""
    path = tmp_path / "notify.toml"
    path.write_text(TOML)
    config = load_config(path)
    slack, audit = config.targets
    assert (slack.name, slack.kind, slack.max_attempts) == ("ops-slack", "slack", 3)
    assert slack.backoff_initial_s == 0.5
    assert slack.filters == Filters(
        kinds=frozenset({"new_leader", "surge"}),
        dimensions=frozenset({"model"}),
        min_severity="notice",
    )
    assert (audit.max_attempts, audit.start) == (8, "earliest")
    assert dict(audit.headers) == {"Authorization": "Bearer xyz"}
    assert (audit.timeout_s, audit.backoff_max_s, config.remember_days) == (10.0, 60.0, 35.0)


def test_a_json_file_is_read_as_json(tmp_path: Path) -> None:
    """A .json name is parsed as JSON, with the same shape as TOML."""
    path = tmp_path / "notify.json"
    path.write_text('{"targets": [{"name": "a", "kind": "slack", "url": "https://x.test/h"}]}')
    (target,) = load_config(path).targets
    assert (target.name, target.kind, target.filters) == ("a", "slack", Filters())


def test_secrets_stay_out_of_the_repr() -> None:
    """A Slack URL and auth headers never show in logs or tracebacks."""
    target = make_target(url="https://h.test/SECRET", headers={"Authorization": "TOKEN"})
    config = parse_config({"targets": [target]})
    assert "SECRET" not in repr(config) and "TOKEN" not in repr(config)
    assert config.targets[0].host == "h.test"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({}, "at least one [[targets]]"),
        ({"targets": []}, "at least one [[targets]]"),
        ({"targets": [make_target()], "retries": 3}, "unknown key 'retries'"),
        ({"targets": [make_target(kind="teams")]}, "kind 'teams' is not one of webhook, slack"),
        ({"targets": [make_target(url="ftp://x/y")]}, "url must be an http:// or https:// URL"),
        ({"targets": [make_target(name="a b")]}, "name must be 1-64 letters"),
        ({"targets": [make_target(), make_target()]}, "t1 repeats"),
        ({"targets": [make_target(filters={"kinds": ["moved"]})]}, "kinds 'moved' is not one"),
        ({"targets": [make_target(filters={"kind": ["surge"]})]}, "unknown key 'kind'"),
        ({"targets": [make_target(filters={"dimensions": []})]}, "non-empty list"),
        ({"targets": [make_target(filters={"min_severity": "high"})]}, "min_severity 'high'"),
        ({"targets": [make_target(max_attempts=0)]}, "max_attempts must be an integer"),
        ({"targets": [make_target(max_attempts=2.5)]}, "max_attempts must be an integer"),
        ({"targets": [make_target(timeout_s=True)]}, "timeout_s must be a number"),
        ({"targets": [make_target(timeout_s=float("nan"))]}, "timeout_s must be a number"),
        ({"targets": [make_target(backoff_initial_s=5, backoff_max_s=1)]}, "backoff_max_s"),
        ({"targets": [make_target(headers={"X": 1})]}, "header values must be strings"),
        ({"targets": [make_target(start="now")]}, "start 'now' is not one of latest, earliest"),
    ],
)
def test_a_bad_config_is_refused_with_one_line_naming_the_key(
    raw: dict[str, Any], words: str
) -> None:
    """Typos and wrong values stop the command at start instead of a silent target."""
    with pytest.raises(InvalidInput) as error:
        parse_config(raw)
    assert words in str(error.value)


def test_an_unreadable_file_names_the_file(tmp_path: Path) -> None:
    """A missing file or broken TOML is one error naming the path."""
    with pytest.raises(InvalidInput, match=r"missing\.toml"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[[targets]\nname=")
    with pytest.raises(InvalidInput, match=r"broken\.toml"):
        load_config(broken)
