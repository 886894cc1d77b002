"""The ``tokenboard notify`` configuration file: its targets, their filters and retry policy.

TOML (any name) or JSON (a ``.json`` name), the same shape either way::

    max_attempts = 5            # optional defaults for every target
    [[targets]]
    name = "ops-slack"
    kind = "slack"              # or "webhook"
    url = "https://hooks.slack.com/services/..."
    filters = { kinds = ["new_leader", "surge"], dimensions = ["model"], min_severity = "notice" }
    headers = { "X-Team" = "ops" }

Every key is checked: a misspelt one, an unknown kind or dimension stops the command at start
with one line naming it (:class:`~aggregations.errors.InvalidInput`), rather than a target
that silently receives nothing.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args
from urllib.parse import urlsplit

from aggregations.errors import InvalidInput
from streams.notify.rules import DIMENSIONS, KINDS, PHASES, SEVERITIES, Filters, Severity

__all__ = ["NotifyConfig", "Start", "Target", "TargetKind", "load_config", "parse_config"]

TargetKind = Literal["webhook", "slack"]
#: Where a target without a committed Kafka position starts: events published from its
#: first run on (``latest``), or the topics' whole history (``earliest``, 30 days).
Start = Literal["latest", "earliest"]
#: Names become part of consumer-group ids and Redis keys.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

#: Delivery policy keys allowed at the top level (defaults) and per target (overrides).
POLICY_DEFAULTS: dict[str, float | int | str] = {
    "max_attempts": 5,
    "backoff_initial_s": 1.0,
    "backoff_max_s": 60.0,
    "timeout_s": 10.0,
    "start": "latest",
}
_TOP_KEYS = {"targets", "remember_days", *POLICY_DEFAULTS}
_TARGET_KEYS = {"name", "kind", "url", "filters", "headers", *POLICY_DEFAULTS}
_FILTER_KEYS = {"kinds", "dimensions", "phases", "min_severity"}


@dataclass(frozen=True, slots=True)
class Target:
    """One place events are posted to, with what it wants and how hard to try."""

    name: str
    kind: TargetKind
    # Slack webhook URLs and auth headers are secrets: kept out of repr, logs and tracebacks.
    url: str = field(repr=False)
    filters: Filters = field(default_factory=Filters)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    max_attempts: int = 5
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    timeout_s: float = 10.0
    start: Start = "latest"

    @property
    def host(self) -> str:
        """The URL's host, the one part of it that is safe to log."""
        return urlsplit(self.url).hostname or "?"


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    """Every target, and how long delivered ids are remembered."""

    targets: tuple[Target, ...]
    #: Delivered ids are kept this long per target (longer than the topics' 30-day retention,
    #: so a record read again from the topic is still recognised).
    remember_days: float = 35.0


def load_config(path: str | Path) -> NotifyConfig:
    """Read and check a TOML or JSON configuration file."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise InvalidInput(f"notify config {file}: {exc.strerror or exc}") from exc
    try:
        raw = json.loads(text) if file.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"notify config {file}: {exc}") from exc
    return parse_config(raw, source=str(file))


def parse_config(raw: Any, source: str = "notify config") -> NotifyConfig:
    """Check a decoded configuration (dicts and lists) and build the :class:`NotifyConfig`."""
    top = _table(raw, source)
    _only(top, _TOP_KEYS, source)
    defaults = {key: top.get(key, value) for key, value in POLICY_DEFAULTS.items()}
    entries = top.get("targets")
    if not isinstance(entries, list) or not entries:
        raise InvalidInput(f"{source}: needs at least one [[targets]] entry")
    targets = tuple(
        _target(entry, defaults, f"{source}: targets[{index}]")
        for index, entry in enumerate(entries)
    )
    names = [t.name for t in targets]
    doubles = sorted({n for n in names if names.count(n) > 1})
    if doubles:
        raise InvalidInput(f"{source}: target names must be unique, {', '.join(doubles)} repeats")
    remember = _number(top.get("remember_days", 35.0), "remember_days", source, low=1.0)
    return NotifyConfig(targets=targets, remember_days=remember)


def _target(raw: Any, defaults: Mapping[str, Any], where: str) -> Target:
    entry = _table(raw, where)
    _only(entry, _TARGET_KEYS, where)
    name = entry.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidInput(
            f"{where}: name must be 1-64 letters, digits, '.', '_' or '-', got {name!r}"
        )
    where = f"{where} ({name})"
    kind = _choice(entry.get("kind"), get_args(TargetKind), "kind", where)
    url = entry.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{where}: url must be an http:// or https:// URL")
    headers = _table(entry.get("headers", {}), f"{where}: headers")
    if not all(isinstance(v, str) for v in headers.values()):
        raise InvalidInput(f"{where}: header values must be strings")
    policy = {**defaults, **{k: entry[k] for k in POLICY_DEFAULTS if k in entry}}
    initial = _number(policy["backoff_initial_s"], "backoff_initial_s", where, low=0.001)
    return Target(
        name=name,
        kind=cast(TargetKind, kind),
        url=cast(str, url),
        filters=_filters(entry.get("filters", {}), f"{where}: filters"),
        headers=dict(headers),
        max_attempts=int(_number(policy["max_attempts"], "max_attempts", where, low=1, whole=True)),
        backoff_initial_s=initial,
        backoff_max_s=_number(policy["backoff_max_s"], "backoff_max_s", where, low=initial),
        timeout_s=_number(policy["timeout_s"], "timeout_s", where, low=0.001),
        start=cast(Start, _choice(policy["start"], get_args(Start), "start", where)),
    )


def _filters(raw: Any, where: str) -> Filters:
    table = _table(raw, where)
    _only(table, _FILTER_KEYS, where)
    severity = _choice(table.get("min_severity", "info"), SEVERITIES, "min_severity", where)
    return Filters(
        kinds=_values(table, "kinds", KINDS, where),
        dimensions=_values(table, "dimensions", DIMENSIONS, where),
        phases=_values(table, "phases", PHASES, where),
        min_severity=cast(Severity, severity),
    )


def _values(
    table: Mapping[str, Any], key: str, allowed: tuple[str, ...], where: str
) -> frozenset[str] | None:
    """A list of allowed words, or None (every value) when the key is absent."""
    if key not in table:
        return None
    values = table[key]
    if not isinstance(values, list) or not values:
        raise InvalidInput(f"{where}: {key} must be a non-empty list (leave it out for all)")
    for value in values:
        _choice(value, allowed, key, where)
    return frozenset(values)


def _table(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: expected a table of keys, got {type(raw).__name__}")
    return raw


def _only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InvalidInput(
            f"{where}: unknown key {', '.join(map(repr, unknown))}"
            f" (known: {', '.join(sorted(allowed))})"
        )


def _choice(value: Any, allowed: tuple[str, ...], key: str, where: str) -> str:
    if value not in allowed:
        raise InvalidInput(f"{where}: {key} {value!r} is not one of {', '.join(allowed)}")
    return cast(str, value)


def _number(value: Any, key: str, where: str, *, low: float, whole: bool = False) -> float:
    # bool is an int to Python, never a number of attempts or seconds.
    ok = isinstance(value, int) if whole else isinstance(value, int | float)
    if not ok or isinstance(value, bool) or not math.isfinite(value) or value < low:
        what = "an integer" if whole else "a number"
        raise InvalidInput(f"{where}: {key} must be {what} of at least {low:g}, got {value!r}")
    return float(value)
