"""Pure parts of the benchmark harness: dataset bookkeeping, statistics, parsing, rendering."""

from __future__ import annotations

import math

import orjson

from aggregations.events import UsageEvent, decode_event, encode_event
from aggregations.weeks import WEEK_MS, week_id, week_start_ms
from bench.dataset import DatasetSpec, Expected, generate, model_ids, time_range
from bench.figures import Latency, Memory, Throughput
from bench.memory import week_times
from bench.procstats import Machine
from bench.profiling import summarise
from bench.report import RunReport, render
from bench.stats import percentile, ratio
from bench.workers import parse_metrics

NOW_MS = 1_795_900_000_000  # a Saturday in 2026-W48


def _dataset(events: int = 3000) -> tuple[Expected, list[tuple[bytes, bytes]]]:
    spec = DatasetSpec(events=events, models=250, weeks=4, partitions=8, seed=3)
    expected = Expected(topic="t", events=events, partitions=8)
    records = [r for chunk in generate(spec, expected, NOW_MS, "x-") for r in chunk]
    return expected, records


def test_generated_totals_match_the_events() -> None:
    """The expected week and cell totals are the sums of the generated events."""
    expected, records = _dataset()
    weeks: dict[str, int] = {}
    cells: dict[tuple[str, str], int] = {}
    for _, value in records:
        event = decode_event(value, now_ms=NOW_MS)
        week = week_id(event.ts_ms)
        weeks[week] = weeks.get(week, 0) + event.tokens
        cells[(week, event.model)] = cells.get((week, event.model), 0) + event.tokens
    assert weeks == expected.week_tokens
    assert cells == expected.cell_tokens
    assert sum(expected.week_events.values()) == len(records) == 3000


def test_generated_events_use_the_wire_format_and_unique_keys() -> None:
    """Values are what encode_event writes; keys are the event ids, all distinct."""
    _, records = _dataset(500)
    for key, value in records:
        event = decode_event(value, now_ms=NOW_MS)
        assert key == event.event_id.encode()
        assert encode_event(event) == value
    assert len({key for key, _ in records}) == len(records)


def test_generated_event_times_are_ordered_and_in_the_last_weeks() -> None:
    """Event time never goes back, so no consumer sees late events."""
    _, records = _dataset(1000)
    times = [orjson.loads(v)["ts"] for _, v in records]
    start, end = time_range(4, NOW_MS)
    assert times == sorted(times)
    assert start <= times[0] and times[-1] <= end < NOW_MS
    assert start == week_start_ms(week_id(NOW_MS)) - 3 * WEEK_MS


def test_expected_round_trips_through_json() -> None:
    """Saved expected totals (for --dataset-prefix) load back identical."""
    expected, _ = _dataset(200)
    assert Expected.from_json(expected.to_json()) == expected


def test_model_ids_start_with_the_catalog_and_are_distinct() -> None:
    """Synthetic ids extend the catalog to the wanted count."""
    ids = model_ids(600)
    assert len(set(ids)) == 600
    assert "/" in ids[0] and ids[-1].startswith("bench-lab-")


def test_memory_week_times_are_one_per_week_oldest_first() -> None:
    """Memory events cover each of the last N ISO weeks once, never in the future."""
    times = week_times(26, NOW_MS)
    weeks = [week_id(t) for t in times]
    assert len(set(weeks)) == 26 and weeks == sorted(weeks)
    assert weeks[-1] == week_id(NOW_MS) and max(times) < NOW_MS


def test_percentile_nearest_rank() -> None:
    """p50/p99 by the nearest-rank method; NaN for nothing."""
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0
    assert math.isnan(percentile([], 0.5))
    assert math.isnan(ratio(1.0, 0.0))


def test_parse_metrics_sums_labelled_samples() -> None:
    """Prometheus text becomes one number per metric, labels summed."""
    text = (
        "# HELP tokenboard_events_consumed_total x\n"
        "tokenboard_events_consumed_total 1234.0\n"
        'tokenboard_events_dead_lettered_total{reason="bad_json"} 2.0\n'
        'tokenboard_events_dead_lettered_total{reason="too_old"} 3.0\n'
        "python_gc_objects_collected_total 9.0\n"
    )
    assert parse_metrics(text) == {
        "tokenboard_events_consumed_total": 1234.0,
        "tokenboard_events_dead_lettered_total": 5.0,
    }


def test_summarise_collapsed_stacks() -> None:
    """Self time goes to the leaf, inclusive time once per stack to every frame."""
    raw = (
        "<module> (a.py:1);loop (asyncio/base_events.py:9);fold (streams/x.py:3);"
        "add (aggregations/partials.py:7) 6\n"
        "<module> (a.py:1);loop (asyncio/base_events.py:9);fold (streams/x.py:4) 2\n"
        "<module> (a.py:1);loop (asyncio/base_events.py:9);write (streams/s.py:5) 2\n"
    )
    profile = summarise(raw, seconds=1.0)
    assert profile.samples == 10
    top = profile.by_self[0]
    assert (top.function, top.location, top.self_pct) == ("add", "aggregations/partials.py", 60)
    inclusive = {h.function: h.total_pct for h in profile.by_total}
    assert "<module>" not in inclusive and "loop" not in inclusive
    assert inclusive == {"write": 20.0}


def test_render_reports_targets_and_ratios() -> None:
    """The results file states every target with its verdict and the ratios."""
    report = RunReport(
        command="python -m bench.run",
        started_utc="2026-11-29 00:00",
        machine=Machine(2, 23.6, "cpu", "6.1", (1.0, 1.0, 1.0)),
        versions={"python": "3.11"},
        config={"events": 10},
        duration_s=600,
    )
    report.throughput = {
        "ceiling": Throughput("ceiling", 100, 1.0, True),
        "tb1": Throughput("tokenboard, 1 worker", 100, 2.0, True, exact=True),
        "faust": Throughput("faust", 10, 1.0, False),
        "quix": Throughput("quix", 40, 1.0, True),
    }
    report.latency = [Latency(20_000, 19_990.0, 30, 600, 50, 0.6, 0.9, 1.2, 1.5)]
    report.memory = Memory(10_000, 26, 260_000, 262_652, 300.0, 400.0, 60.0, 60.0, True)
    text = render(report)
    assert "| tokenboard (1 worker) / ceiling | 0.50 |" in text
    assert "| ≥ 3x the textbook Faust agent | 5.0x | met |" in text
    assert "| faster than Quix Streams | 1.25x | met |" in text
    assert "1.20 s | met |" in text
    assert "419 MB peak (10,000 x 26) | met |" in text
    assert "| 1 worker ≥ 50,000 events/s end to end | 50 events/s | **missed** |" in text


def test_usage_event_sanity() -> None:
    """The harness relies on tokens = prompt + completion."""
    assert UsageEvent("a", NOW_MS, "m", 3, 4).tokens == 7
