"""The PromQL reading of tests/deploy/promql.py: which names and labels an expression uses."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tests.deploy.promql import exposed_names, exposition_labels, usage


@pytest.mark.parametrize(
    ("expr", "metrics"),
    [
        ("up", {"up": set()}),
        ('up{job=~"tokenboard.*"} == 0', {"up": {"job"}}),
        (
            "sum by (reason) (rate(tokenboard_events_dead_lettered_total[5m]))",
            {"tokenboard_events_dead_lettered_total": set()},
        ),
        (
            "histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket[$__rate_interval])))",
            {"x_seconds_bucket": set()},
        ),
        ("(max(ready) or vector(0)) < 1", {"ready": set()}),
        ("a > 1e3 and b offset 5m", {"a": set(), "b": set()}),
        ('lag{partition="3", instance!="w:1"} > 0x10', {"lag": {"partition", "instance"}}),
        ('a{l="{not a selector}"} unless b', {"a": {"l"}, "b": set()}),
        ("max(a) by (instance) > bool 2", {"a": set()}),
        ("ready == 1 and on (instance) age", {"ready": set(), "age": set()}),
    ],
)
def test_metric_names_and_their_matchers(expr: str, metrics: dict[str, set[str]]) -> None:
    """Every metric name is found with the labels of its matchers; functions, keywords,
    numbers, durations and Grafana variables are not names."""
    assert usage(expr).metrics == metrics


def test_grouping_labels() -> None:
    """Labels of by, without, on, ignoring and group_left/right clauses are collected."""
    found = usage(
        "sum by (reason) (rate(a[5m])) / ignoring (reason) group_left (x)"
        " sum without (pod, le) (b) and on (instance) c"
    )
    assert found.grouping == {"reason", "x", "pod", "le", "instance"}
    assert set(found.metrics) == {"a", "b", "c"}


def test_nameless_selectors_are_reported() -> None:
    """A selector without a metric name is reported, since its name cannot be checked."""
    found = usage('{job="api"} and a')
    assert found.nameless == ['{job=""}']  # string values are blanked before the search
    assert found.metrics == {"a": set()}


def test_exposition_names_follow_the_metric_type() -> None:
    """Counters add _total, histograms _bucket (with le), _sum and _count; a label named like
    a target label is exported_<label>."""
    registry = CollectorRegistry()
    counter = Counter("c_total", "c", ["job"], registry=registry)
    gauge = Gauge("g", "g", registry=registry)
    histogram = Histogram("h_seconds", "h", ["kind"], registry=registry)
    assert exposition_labels(counter) == {"c_total": {"exported_job"}}
    assert exposition_labels(gauge) == {"g": set()}
    assert exposition_labels(histogram) == {
        "h_seconds_bucket": {"kind", "le"},
        "h_seconds_sum": {"kind"},
        "h_seconds_count": {"kind"},
    }
    assert set(exposed_names([counter, gauge, "not a metric"])) == {"up", "c_total", "g"}
