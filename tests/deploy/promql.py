"""The metric names and labels a PromQL expression uses, for the deployment tests.

Not a parser: ``promtool`` checks the syntax of every expression (tests/deploy/
test_observability.py). This only finds the names, so that the tests can hold them against
the metrics tokenboard defines, and the names a Prometheus server derives from them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.metrics import MetricWrapperBase

__all__ = ["TARGET_LABELS", "Usage", "exposed_names", "exposition_labels", "usage"]

#: Labels Prometheus puts on every scraped series (the k8s scrape config adds the last two).
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod"})
#: Words of the language that look like metric names.
KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "inf",
        "nan",
    }
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SELECTOR = re.compile(r"(?<![\w:])([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^{}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_RANGE = re.compile(r"\[[^\]]*\]")
# A whole identifier (not the tail of a number, a duration or a $variable) that no "(" follows.
_NAME = re.compile(r"(?<![\w:.$])([A-Za-z_:][A-Za-z0-9_:]*)\b(?!\s*\()")


@dataclass
class Usage:
    """What one expression refers to."""

    #: metric name -> the labels its selectors match on (empty set: a bare name)
    metrics: dict[str, set[str]] = field(default_factory=dict)
    #: labels named in by/without/on/ignoring/group_left/group_right clauses
    grouping: set[str] = field(default_factory=set)
    #: selectors without a metric name ({job="x"}): the name cannot be checked
    nameless: list[str] = field(default_factory=list)


def _labels(text: str) -> set[str]:
    return {label.strip() for label in text.split(",") if label.strip()}


def usage(expr: str) -> Usage:
    """The metric names and labels of a PromQL expression."""
    found = Usage()
    text = _STRING.sub('""', expr)

    def selector(match: re.Match[str]) -> str:
        name, matchers = match.group(1), match.group(2)
        labels = set(_MATCHER.findall(matchers))
        if name is None or name.lower() in KEYWORDS:
            # `{...}` alone, or after an operator such as `and`: a selector without a name.
            found.nameless.append(match.group(0))
            return f" {name or ''} "
        found.metrics.setdefault(name, set()).update(labels)
        return f" {name} "

    text = _SELECTOR.sub(selector, text)
    text = _RANGE.sub(" ", text)

    def grouping(match: re.Match[str]) -> str:
        found.grouping |= _labels(match.group(1))
        return " "

    text = _GROUPING.sub(grouping, text)
    for name in _NAME.findall(text):
        if name.lower() not in KEYWORDS:
            found.metrics.setdefault(name, set())
    return found


def exposition_labels(wrapper: MetricWrapperBase) -> dict[str, frozenset[str]]:
    """The series names a metric object is scraped as, each with its labels (a label that
    collides with a target label is stored by Prometheus as ``exported_<label>``)."""
    labels = frozenset(
        f"exported_{label}" if label in TARGET_LABELS else label for label in wrapper._labelnames
    )
    names: dict[str, frozenset[str]] = {}
    for family in wrapper.describe():
        base = family.name
        if family.type == "counter":
            names[f"{base}_total"] = labels
        elif family.type == "histogram":
            names[f"{base}_bucket"] = labels | {"le"}
            names[f"{base}_sum"] = labels
            names[f"{base}_count"] = labels
        elif family.type == "summary":
            names[base] = labels | {"quantile"}
            names[f"{base}_sum"] = labels
            names[f"{base}_count"] = labels
        else:
            names[base] = labels
    return names


def exposed_names(objects: Iterable[object]) -> dict[str, frozenset[str]]:
    """:func:`exposition_labels` of every metric object among ``objects`` (a module's
    ``vars().values()``), plus ``up``, which Prometheus adds for every target."""
    names: dict[str, frozenset[str]] = {"up": frozenset()}
    for value in objects:
        if isinstance(value, MetricWrapperBase):
            names.update(exposition_labels(value))
    return names
