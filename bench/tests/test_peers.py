"""Pure parts of the Bytewax and Flink SQL peers: window alignment, checks, parsing, rows."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregations.weeks import DAY_MS, WEEK_MS, week_id, week_start_ms
from bench.child import last_error_line, parent_pid
from bench.figures import Throughput
from bench.flink_job import (
    TUMBLE_OFFSET_DAYS,
    WATERMARK_DELAY_DAYS,
    WINDOW_QUERY,
    Windows,
    source_ddl,
    usage_between,
    utc_ms,
)
from bench.flink_sql import java_major
from bench.procstats import Machine
from bench.report import RunReport, render
from bench.weekly_windows import (
    ISO_WEEK_ALIGN,
    ISO_WEEK_OFFSET_MS,
    aligned_window_start_ms,
    check_windows,
    tumble_start_ms,
)

MONDAY_2026_W46 = week_start_ms("2026-W46")
# Around ISO week and year boundaries: the last and first millisecond of weeks, a Thursday
# (where epoch-aligned 7-day windows start), ISO years with 53 weeks, and before 1970.
INSTANTS = [
    MONDAY_2026_W46,
    MONDAY_2026_W46 - 1,
    MONDAY_2026_W46 + 3 * DAY_MS,
    MONDAY_2026_W46 + WEEK_MS - 1,
    week_start_ms("2020-W53") + 6 * DAY_MS,
    week_start_ms("2021-W01"),
    week_start_ms("2027-W01") - 1,
    0,
    -1,
    -5 * DAY_MS,
    *range(1_700_000_000_000, 1_700_000_000_000 + 15 * DAY_MS, 7_919_993),
]


@pytest.mark.parametrize("ts", INSTANTS)
def test_flink_tumble_with_the_offset_is_the_iso_week(ts: int) -> None:
    """TUMBLE(7 days, offset 4 days) puts every instant in the ISO week that holds it."""
    assert tumble_start_ms(ts, WEEK_MS, ISO_WEEK_OFFSET_MS) == week_start_ms(week_id(ts))


def test_without_the_offset_windows_start_on_thursdays() -> None:
    """Why the offset: epoch-aligned 7-day windows start on a Thursday (like Faust's, Quix's)."""
    start = tumble_start_ms(MONDAY_2026_W46, WEEK_MS)
    assert datetime.fromtimestamp(start / 1000, UTC).strftime("%A") == "Thursday"
    assert start != week_start_ms(week_id(MONDAY_2026_W46))


def test_the_flink_query_uses_the_iso_offset() -> None:
    """The SQL's offset is the one the alignment tests check."""
    assert TUMBLE_OFFSET_DAYS * DAY_MS == ISO_WEEK_OFFSET_MS
    assert f"INTERVAL '7' DAY, INTERVAL '{TUMBLE_OFFSET_DAYS}' DAY" in WINDOW_QUERY
    assert "GROUP BY window_start, window_end, model" in WINDOW_QUERY


def test_the_flink_source_reads_the_topic_from_the_beginning_to_its_end() -> None:
    """Earliest offsets, bounded at start, JSON, event time from ``ts`` in ms."""
    ddl = source_ddl("t1.usage", "127.0.0.1:19092", "g1")
    for part in (
        "'topic' = 't1.usage'",
        "'properties.bootstrap.servers' = '127.0.0.1:19092'",
        "'properties.group.id' = 'g1'",
        "'scan.startup.mode' = 'earliest-offset'",
        "'scan.bounded.mode' = 'latest-offset'",
        "'format' = 'json'",
        "rowtime AS TO_TIMESTAMP_LTZ(ts, 3)",
        f"rowtime - INTERVAL '{WATERMARK_DELAY_DAYS}' DAY",
    ):
        assert part in ddl


@pytest.mark.parametrize("ts", INSTANTS)
def test_bytewax_window_ids_map_to_iso_weeks(ts: int) -> None:
    """Window ids counted in weeks from the aligning Monday give the ISO week's start."""
    align_ms = int(ISO_WEEK_ALIGN.timestamp() * 1000)
    assert ISO_WEEK_ALIGN.strftime("%A") == "Monday"
    assert aligned_window_start_ms((ts - align_ms) // WEEK_MS) == week_start_ms(week_id(ts))


@pytest.mark.skipif(importlib.util.find_spec("bytewax") is None, reason="bench extra")
def test_bytewax_tumbling_windower_assigns_those_ids() -> None:
    """Bytewax's own windower agrees with the mapping (its window id is what it emits)."""
    from datetime import timedelta

    from bytewax.operators.windowing import TumblingWindower

    logic = TumblingWindower(length=timedelta(days=7), align_to=ISO_WEEK_ALIGN).build(None)
    for ts in INSTANTS[:7]:
        (window_id,) = logic.open_for(datetime.fromtimestamp(ts / 1000, UTC))
        assert aligned_window_start_ms(window_id) == week_start_ms(week_id(ts))


def test_check_windows_accepts_exact_sums() -> None:
    """Equal (week, model) sums: exact, with a note that says how many."""
    w46, w47 = week_start_ms("2026-W46"), week_start_ms("2026-W47")
    expected = {("2026-W46", "a"): 5, ("2026-W47", "a"): 7, ("2026-W47", "b"): 1}
    exact, note = check_windows([(w46, "a", 5), (w47, "a", 7), (w47, "b", 1)], expected)
    assert exact
    assert note == "all 3 (ISO week, model) window sums equal the dataset's"


def test_check_windows_names_a_wrong_or_missing_sum() -> None:
    """A differing or absent cell makes the result inexact, and the note names one."""
    w46 = week_start_ms("2026-W46")
    expected = {("2026-W46", "a"): 5, ("2026-W46", "b"): 2}
    exact, note = check_windows([(w46, "a", 4)], expected)
    assert not exact
    assert note.startswith("2 of 2 (week, model) sums differ")
    assert "2026-W46 a: 4 tokens, expected 5" in note


def test_check_windows_rejects_thursday_windows_even_with_right_totals() -> None:
    """Misaligned windows fail although they land in (and could add up to) the right week."""
    thursday = week_start_ms("2026-W46") + 3 * DAY_MS
    exact, note = check_windows([(thursday, "a", 5)], {("2026-W46", "a"): 5})
    assert not exact
    assert note == "1 windows do not start on Monday 00:00 UTC"


def test_flink_rows_fold_into_events_and_the_first_and_last_instants() -> None:
    """COUNT(*) adds up; MIN/MAX(NOW()) give the span the rate is measured over."""
    windows = Windows()
    windows.add(
        "2026-11-09 00:00:00.000", "a", 10, 3, "2026-12-02 11:30:12.500", "2026-12-02 11:30:16.000"
    )
    windows.add(
        "2026-11-16 00:00:00.000", "a", 4, 2, "2026-12-02 11:30:13.000", "2026-12-02 11:30:20.250"
    )
    assert windows.events == 5
    assert windows.rows[0] == (week_start_ms("2026-W46"), "a", 10)
    assert windows.last_ms is not None and windows.first_ms is not None
    assert windows.last_ms - windows.first_ms == 7_750
    assert utc_ms("1970-01-05 00:00:00.000") == ISO_WEEK_OFFSET_MS


def test_usage_between_covers_the_span_with_the_nearest_samples() -> None:
    """CPU % of one core over the samples around the span (tree CPU, machine busy)."""
    samples = [(0.0, 0.0, 0.0), (1.0, 0.5, 1.0), (2.0, 1.5, 2.5), (3.0, 2.5, 4.0)]
    assert usage_between(samples, 1.2, 1.8) == (100.0, 150.0)  # samples 1.0 .. 2.0
    assert usage_between(samples, 0.5, 1.0) == (50.0, 100.0)  # samples 0.0 .. 1.0
    assert usage_between(samples, -5.0, 9.0) == pytest.approx((250 / 3, 400 / 3))
    assert usage_between(samples[:1], 0.0, 1.0) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "11.0.2" 2019-01-15', 11),
        ("bash: java: command not found", None),
    ],
)
def test_java_major(output: str, major: int | None) -> None:
    """The major Java version from ``java -version``, old ``1.x`` numbering included."""
    assert java_major(output) == major


def test_parent_pid_survives_spaces_and_parentheses_in_the_name() -> None:
    """``/proc/<pid>/stat``'s command name may contain both."""
    assert parent_pid("4242 (java (x) y) S 31 4242 4242 0 -1") == 31


def test_last_error_line_gives_the_reason_a_child_died(tmp_path: Path) -> None:
    """The row of a child that exited says why, from the end of its log."""
    log = tmp_path / "child.log"
    log.write_text("starting\nTraceback (most recent call last):\n  File x\n"
                   "ModuleNotFoundError: No module named 'confluent_kafka'\n")  # fmt: skip
    assert last_error_line(log) == "ModuleNotFoundError: No module named 'confluent_kafka'"
    assert last_error_line(tmp_path / "absent.log") == ""


def test_rows_of_peers_and_of_a_peer_that_cannot_run() -> None:
    """Peer rows, their ratios, and an unavailable peer's row with its reason."""
    report = RunReport(
        command="python -m bench.run",
        started_utc="2026-12-02 00:00",
        machine=Machine(2, 23.6, "cpu", "6.1", (1.0, 1.0, 1.0)),
        versions={"python": "3.11"},
        config={"events": 10},
        duration_s=60,
    )
    reason = "no `java` on PATH: PyFlink runs Flink in a JVM (Java 11, 17 or 21)"
    report.throughput = {
        "tb1": Throughput("tokenboard, 1 worker", 100, 1.0, True, exact=True),
        "bytewax": Throughput("Bytewax", 50, 1.0, True, exact=True, notes=["sums equal"]),
        "flink": Throughput("Flink SQL", 0, 0.0, False, error=reason),
    }
    text = render(report)
    assert "| Bytewax | 50 | 1.0 | **50** | yes | yes |" in text
    assert "| Flink SQL | 0 | 0.0 | – | **no** | – |" in text
    assert f"- Flink SQL: {reason}" in text
    assert "| tokenboard (1 worker) / Bytewax | 2.00 |" in text
    assert "| tokenboard (1 worker) / Flink SQL | – |" in text
