"""Rendering one benchmark run as ``bench/RESULTS.md``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bench.dataset import Expected
from bench.figures import Latency, Memory, Profile, SnapshotCost, Throughput
from bench.procstats import Machine
from bench.producers import ProducerRow
from bench.ranker_tick import RankerTick, render_ranker_ticks
from bench.read_load import ReadResults, render_read
from bench.recovery import RecoveryResults, render_recovery
from bench.stage1_micro import StepCost
from bench.stats import ratio

MIB = 1024 * 1024
TARGET_RATE = 50_000
TARGET_CEILING_SHARE = 0.5
TARGET_FAUST_FACTOR = 3.0
TARGET_P99_S = 2.0
TARGET_RSS_MB = 500
TARGET_MINUTES = 20


@dataclass
class RunReport:
    """Everything one run measured."""

    command: str
    started_utc: str
    machine: Machine
    versions: dict[str, str]
    config: dict[str, Any]
    duration_s: float = 0.0
    load_end: tuple[float, float, float] = (0.0, 0.0, 0.0)
    dataset: Expected | None = None
    throughput: dict[str, Throughput] = field(default_factory=dict)
    latency: list[Latency] = field(default_factory=list)
    memory: Memory | None = None
    snapshots: list[SnapshotCost] = field(default_factory=list)
    ranker_ticks: list[RankerTick] = field(default_factory=list)
    micro: list[StepCost] = field(default_factory=list)
    profile: Profile | None = None
    read: ReadResults | None = None
    recovery: RecoveryResults | None = None
    producers: list[ProducerRow] | None = None
    errors: list[str] = field(default_factory=list)
    findings: str = ""


def _num(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _yes(value: bool | None) -> str:
    return "–" if value is None else ("yes" if value else "**no**")


def _met(ok: bool | None) -> str:
    return "not measured" if ok is None else ("met" if ok else "**missed**")


def _throughput_table(report: RunReport) -> list[str]:
    lines = [
        "| system | events measured | seconds | events/s | all events | exact | "
        "process CPU % | machine CPU % | peak RSS MiB | start-up s |",
        "| --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for t in report.throughput.values():
        rate = f"**{_num(t.rate)}**" if t.rate else "–"
        lines.append(
            f"| {t.name} | {_num(t.events)} | {_num(t.seconds, 1)} | {rate} | "
            f"{_yes(t.complete)} | {_yes(t.exact)} | {_num(t.cpu_pct)} | "
            f"{_num(t.machine_cpu_pct)} | {_num(t.peak_rss_mib)} | {_num(t.startup_s, 1)} |"
        )
    notes = [
        f"- {t.name}: {'; '.join([*t.notes, t.error] if t.error else t.notes)}"
        for t in report.throughput.values()
        if t.notes or t.error
    ]
    return [*lines, "", *notes]


def _ratios(report: RunReport) -> list[str]:
    tp = report.throughput
    lines = ["| ratio | value |", "| --- | ---: |"]
    for key, label in (("tb1", "1 worker"), ("tb2", "2 workers")):
        if key not in tp:
            continue
        rate = tp[key].rate
        for other, name in (
            ("ceiling", "ceiling"),
            ("faust", "Faust textbook"),
            ("quix", "Quix Streams"),
            ("bytewax", "Bytewax"),
            ("flink", "Flink SQL"),
        ):
            if other in tp:
                lines.append(
                    f"| tokenboard ({label}) / {name} | {_num(ratio(rate, tp[other].rate), 2)} |"
                )
    return lines


def _targets(report: RunReport) -> list[str]:
    tp = report.throughput
    tb1 = tp.get("tb1")
    rate = tb1.rate if tb1 else None
    ceiling = tp.get("ceiling")
    faust = tp.get("faust")
    quix = tp.get("quix")
    steady = next((lat for lat in report.latency if lat.target_rate == 20_000), None)
    rows: list[tuple[str, str, bool | None]] = []
    rows.append(
        (
            f"1 worker ≥ {TARGET_RATE:,} events/s end to end",
            f"{_num(rate)} events/s",
            None if rate is None else rate >= TARGET_RATE,
        )
    )
    share = ratio(rate, ceiling.rate) if rate and ceiling else None
    rows.append(
        (
            "≥ 50 % of the ceiling",
            "–" if share is None else f"{100 * share:.1f} %",
            None if share is None else share >= TARGET_CEILING_SHARE,
        )
    )
    factor = ratio(rate, faust.rate) if rate and faust else None
    rows.append(
        (
            "≥ 3x the textbook Faust agent",
            "–" if factor is None else f"{factor:.1f}x",
            None if factor is None else factor >= TARGET_FAUST_FACTOR,
        )
    )
    quix_factor = ratio(rate, quix.rate) if rate and quix else None
    rows.append(
        (
            "faster than Quix Streams",
            "–" if quix_factor is None else f"{quix_factor:.2f}x",
            None if quix_factor is None else quix_factor > 1,
        )
    )
    rows.append(
        (
            f"p99 produce→Redis < {TARGET_P99_S:.0f} s at 20,000 events/s",
            "–" if steady is None else f"{steady.p99_s:.2f} s",
            None if steady is None or steady.error else steady.p99_s < TARGET_P99_S,
        )
    )
    mem = report.memory
    full_size = mem is not None and (mem.models, mem.weeks) == (10_000, 26) and not mem.error
    peak_mb = mem.peak_rss_mib * MIB / 1e6 if mem else None
    rows.append(
        (
            f"worker RSS < {TARGET_RSS_MB} MB with 10,000 models x 26 weeks",
            "–"
            if peak_mb is None or mem is None
            else f"{peak_mb:,.0f} MB peak ({mem.models:,} x {mem.weeks})",
            peak_mb < TARGET_RSS_MB if full_size and peak_mb is not None else None,
        )
    )
    minutes = report.duration_s / 60
    rows.append(
        (
            f"`make bench` < {TARGET_MINUTES} min",
            f"{minutes:.1f} min for `python -m bench.run` (plus install and stack start)",
            minutes < TARGET_MINUTES,
        )
    )
    lines = ["| target | measured | |", "| --- | --- | --- |"]
    lines += [f"| {target} | {value} | {_met(ok)} |" for target, value, ok in rows]
    return lines


def _latency(report: RunReport) -> list[str]:
    lines = [
        "| produce rate (target) | achieved | seconds | p50 s | p90 s | p99 s | max s | "
        "ticks never seen | worker CPU % | machine CPU % |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for lat in report.latency:
        lines.append(
            f"| {lat.target_rate:,} | {_num(lat.achieved_rate)} | {_num(lat.seconds, 1)} | "
            f"{_num(lat.p50_s, 3)} | {_num(lat.p90_s, 3)} | {_num(lat.p99_s, 3)} | "
            f"{_num(lat.max_s, 3)} | {lat.unseen_ticks} | {_num(lat.worker_cpu_pct)} | "
            f"{_num(lat.machine_cpu_pct)} |"
        )
    errors = [f"- {lat.target_rate:,}/s: {lat.error}" for lat in report.latency if lat.error]
    return [*lines, *errors]


def _memory(mem: Memory) -> list[str]:
    return [
        "| models x weeks | events | table keys | load s | RSS idle MiB | RSS MiB | "
        "peak RSS MiB (MB) | sample exact |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        f"| {mem.models:,} x {mem.weeks} | {mem.events:,} | {mem.table_keys:,} | "
        f"{_num(mem.load_seconds, 1)} | {_num(mem.baseline_rss_mib)} | {_num(mem.rss_mib)} | "
        f"{_num(mem.peak_rss_mib)} ({_num(mem.peak_rss_mib * MIB / 1e6)}) | "
        f"{_yes(mem.exact)} |",
        *([f"\nError: {mem.error}"] if mem.error else []),
    ]


def _snapshots(costs: list[SnapshotCost]) -> list[str]:
    lines = [
        "| keys written | Redis commands | seconds | keys/s | ms per 1,000 keys |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in costs:
        lines.append(
            f"| {c.keys:,} | {c.redis_commands:,} | {c.seconds:.3f} | {_num(c.keys_per_s)} | "
            f"{_num(1000 * c.seconds / c.keys * 1000 if c.keys else None, 1)} |"
        )
    return lines


def _micro(steps: list[StepCost]) -> list[str]:
    lines = [
        "| cumulative step | µs per event | events/s on one core |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {s.step} | {s.us_per_event:.2f} | {_num(s.events_per_s)} |" for s in steps]
    return lines


def _profile(profile: Profile) -> list[str]:
    if profile.error:
        return [f"Profile not available: {profile.error}"]
    busy = 100 * profile.samples / max(profile.seconds * profile.rate, 1)
    consumed = (
        f", consuming {profile.events_per_s:,.0f} events/s while sampled"
        if profile.events_per_s
        else ""
    )
    lines = [
        f"py-spy at {profile.rate} Hz, non-blocking, {profile.samples:,} on-CPU samples in "
        f"{profile.seconds:.0f} s (the worker was on a CPU {busy:.0f} % of the time"
        f"{consumed}; raw stacks: `{profile.raw_path}`).",
        "",
        "Functions by own (self) time:",
        "",
        "| function | where | self % | inclusive % |",
        "| --- | --- | ---: | ---: |",
    ]
    lines += [
        f"| `{h.function}` | {h.location} | {h.self_pct:.1f} | {h.total_pct:.1f} |"
        for h in profile.by_self
    ]
    lines += [
        "",
        "Inclusive time (own time plus callees) of the parts below the event loop:",
        "",
        "| function | where | inclusive % |",
        "| --- | --- | ---: |",
    ]
    lines += [f"| `{h.function}` | {h.location} | {h.total_pct:.1f} |" for h in profile.by_total]
    return lines


def render(report: RunReport) -> str:
    """The whole results file."""
    m = report.machine
    out = [
        "# tokenboard benchmark results",
        "",
        f"Run {report.started_utc} (UTC), {report.duration_s / 60:.1f} min, with:",
        "",
        "```",
        report.command,
        "```",
        "",
        "> Numbers are noisy: this is a shared 2-core machine on which other engineers ran",
        "> test suites during the run, and Kafka, Redis, the producer and the systems under",
        "> test all share the same two cores. Load average at the start "
        f"{m.load_average[0]:.2f} / {m.load_average[1]:.2f} / {m.load_average[2]:.2f}, at the "
        f"end {report.load_end[0]:.2f} / {report.load_end[1]:.2f} / {report.load_end[2]:.2f}.",
        "> CPU % columns are of one core (200 % = the whole machine).",
        "",
        "## Machine and versions",
        "",
        f"- {m.cores} cores ({m.cpu_model}), {m.memory_gib:.1f} GiB memory, Linux {m.kernel}",
    ]
    out += [f"- {name}: {version}" for name, version in report.versions.items()]
    out += ["", "Parameters: " + ", ".join(f"{k}={v}" for k, v in report.config.items()), ""]
    if report.dataset is not None:
        d = report.dataset
        weeks = ", ".join(f"{w}: {n:,}" for w, n in sorted(d.week_events.items()))
        out += [
            "## Dataset",
            "",
            f"{d.events:,} usage events ({d.bytes / MIB:,.0f} MiB of JSON, "
            f"{d.bytes / max(d.events, 1):.0f} bytes each) in `{d.topic}` ({d.partitions} "
            f"partitions), {len(d.models)} models (Zipf 1.1), events per ISO week: {weeks}. "
            f"Written once in {d.produce_seconds:.1f} s "
            f"({d.events / max(d.produce_seconds, 1e-9):,.0f} events/s); every system below "
            "read this same topic from the beginning with its own consumer group.",
            "",
        ]
    out += ["## Targets", "", *_targets(report), ""]
    if report.throughput:
        out += [
            "## Throughput on the same data",
            "",
            "Clocks start at each system's first consumed event (start-up is the column "
            "before), and stop when tokenboard's Redis totals equal the expected totals of "
            "every week / when the others have processed every event (or their time budget "
            "ran out: *all events* = no). Only tokenboard writes its results to Redis.",
            "",
            *_throughput_table(report),
            "",
            *_ratios(report),
            "",
        ]
    if report.latency:
        out += [
            "## Produce → Redis latency",
            "",
            "One worker; ticks of 50 ms, latency of a tick = first Redis poll (10 ms) showing "
            "the cumulative tokens of all ticks up to it minus its hand-over to the producer.",
            "",
            *_latency(report),
            "",
        ]
    if report.memory is not None:
        out += ["## Worker memory", "", *_memory(report.memory), ""]
    if report.snapshots:
        out += [
            "## Redis snapshot cost as state grows",
            "",
            "`SnapshotWriter.write` of N model keys (2 daily buckets each), in-process.",
            "",
            *_snapshots(report.snapshots),
            "",
        ]
    ranker_ticks = getattr(report, "ranker_ticks", [])  # reports saved before this phase
    if ranker_ticks:
        out += ["## Ranker tick as a week grows", "", *render_ranker_ticks(ranker_ticks), ""]
    if report.micro:
        out += [
            "## Stage 1 per-event work without Kafka",
            "",
            "The pre-aggregator's per-event functions on 200,000 dataset events in memory "
            "(best of three), each row adding a step to the previous one.",
            "",
            *_micro(report.micro),
            "",
        ]
    if report.profile is not None:
        out += ["## Profile of one worker over the dataset", "", *_profile(report.profile), ""]
    read = getattr(report, "read", None)  # reports saved before the read phase existed
    if read is not None:
        out += ["## Read side: tokenboard api under load", "", *render_read(read), ""]
    recovery = getattr(report, "recovery", None)  # reports saved before the phase existed
    if recovery is not None:
        out += ["## Table recovery after a SIGKILL", "", *render_recovery(recovery), ""]
    producers = getattr(report, "producers", None)
    if producers:
        out += [
            "## Producers: the SDK, the ingest gateway and its OTLP receiver",
            "",
            "Targets: the SDK >= 100,000 events/s from one process, the gateway >= 50,000 "
            "events/s with 1,000-event bodies. Every figure counts acknowledged events only.",
            "",
            "| path | events | seconds | per second | note |",
            "| --- | ---: | ---: | ---: | --- |",
            *(
                f"| {r.path} | {r.events:,} | {r.seconds:.1f} | {r.per_s:,.0f} | {r.note} |"
                for r in producers
            ),
            "",
        ]
    if report.errors:
        out += ["## Errors", "", *[f"- {e}" for e in report.errors], ""]
    if report.findings:
        out += [report.findings.strip(), ""]
    return "\n".join(out)
