"""Pure parts of the table-recovery benchmark: log parsing, the victim's choice, the table."""

from __future__ import annotations

from bench.recovery import (
    Recovery,
    RecoveryResults,
    active_changelog_partitions,
    render_recovery,
    restore_seconds,
    settled_owner,
)

TOPIC = "recov1-weekly-changelog"


def _highwater(stamp: str, rows: list[tuple[str, int]], title: str = "active") -> str:
    """A Faust "Highwater for ... changelog partitions" log record with its table."""
    lines = [
        f"[{stamp}] [7] [INFO] [^---Recovery]: Highwater for {title} changelog partitions:",
        "+Highwater - Active--------------+-----------+-----------+",
        "| topic                          | partition | highwater |",
        "+--------------------------------+-----------+-----------+",
    ]
    previous = ""
    for topic, partition in rows:
        shown = "\u3003" if topic == previous else topic
        lines.append(f"| {shown:<30} | {partition:<9} | 41        |")
        previous = topic
    lines.append("+--------------------------------+-----------+-----------+ ")
    return "\n".join(lines)


def test_active_partitions_come_from_the_last_active_highwater_table() -> None:
    """Ditto marks repeat the topic; standby tables and older rebalances are ignored."""
    progress = "recov1-progress-changelog"
    log = "\n".join(
        [
            "[2026-12-02 11:12:40,000] [7] [INFO] starting",
            _highwater("2026-12-02 11:12:41,000", [(TOPIC, p) for p in range(8)]),
            _highwater(
                "2026-12-02 11:12:47,217",
                [(progress, 1), (progress, 6), (TOPIC, 1), (TOPIC, 6)],
            ),
            _highwater("2026-12-02 11:12:47,300", [(TOPIC, 0), (TOPIC, 3)], title="standby"),
            "[2026-12-02 11:12:48,000] [7] [INFO] [^---Recovery]: Recovery complete",
        ]
    )
    assert active_changelog_partitions(log, TOPIC) == {1, 6}
    assert active_changelog_partitions(log, progress) == {1, 6}
    assert active_changelog_partitions(log, "other-changelog") == set()
    assert active_changelog_partitions("[2026-12-02 11:12:40,000] [7] [INFO] up", TOPIC) is None


def test_settled_owner_waits_for_disjoint_partitions_covering_all() -> None:
    """No owner while a worker has no table yet, partitions overlap, or some are missing."""
    assert settled_owner({"a": {0, 1, 2, 3}, "b": None}, 4, 2) is None
    assert settled_owner({"a": {0, 1, 2, 3}, "b": {2, 3}}, 4, 2) is None
    assert settled_owner({"a": {0, 1}, "b": {3}}, 4, 2) is None
    assert settled_owner({"a": {0, 1}, "b": {2, 3}}, 4, 2) == "b"
    assert settled_owner({"a": {0, 1}, "b": {2, 3}}, 4, 0) == "a"
    assert settled_owner({"a": set(), "b": {0, 1, 2, 3}}, 4, 0) == "b"


def test_restore_seconds_of_the_last_recovery() -> None:
    """From the last active highwater table to the "Recovery complete" that follows it."""
    log = "\n".join(
        [
            _highwater("2026-12-02 11:00:00,000", [(TOPIC, 0)]),
            "[2026-12-02 11:00:01,000] [7] [INFO] [^---Recovery]: Recovery complete",
            _highwater("2026-12-02 11:05:00,000", [(TOPIC, 0), (TOPIC, 1)]),
            "[2026-12-02 11:05:02,500] [7] [INFO] [^---Recovery]: Recovery complete",
        ]
    )
    assert restore_seconds(log) == 2.5
    assert restore_seconds(log.split("\n[2026-12-02 11:00:01")[0]) is None


def test_render_recovery_has_a_row_per_scenario_standby_and_size() -> None:
    """One table: the scenario first, missing values as dashes, failures listed below."""
    results = RecoveryResults(
        runs=[
            Recovery(
                1_102, 0, fill_s=4.6, ready_s=20.7, counting_s=26.3, restore_s=1.361, exact=True
            ),
            Recovery(
                10_102, 1, "takeover", fill_s=21.8, counting_s=24.04, restore_s=3.0, exact=True
            ),
            Recovery(100_102, 1, "takeover", fill_s=300.0, error="TimeoutError: slow"),
        ],
        notes=["a note"],
    )
    lines = render_recovery(results)
    header = next(line for line in lines if line.startswith("| scenario"))
    assert header.count("|") == 9
    assert "| new-worker | 1,102 | 0 | 4.6 | 20.7 | 26.3 | 1.36 | yes |" in lines
    assert "| takeover | 10,102 | 1 | 21.8 | – | 24.0 | 3.00 | yes |" in lines
    assert "| takeover | 100,102 | 1 | 300.0 | – | – | – | – |" in lines
    assert "- takeover, 100,102 keys, standby 1: TimeoutError: slow" in lines
    assert lines[-1] == "- a note"
