"""``python -m bench.run``: the whole benchmark, one command, results in ``bench/RESULTS.md``.

Phases (each can be skipped with ``--skip``): the dataset, the ceiling, tokenboard with 1
and 2 workers, the textbook Faust agent, Quix Streams, Bytewax, Flink SQL, latency at a
steady rate (and at a rate one worker sustains), worker memory with 10,000 models x 26
weeks, Redis snapshot cost, the ranker's tick at 1,000 to 100,000 members (``ranker``,
``bench/ranker_tick.py``), stage 1's per-event cost without Kafka, and a py-spy profile of
one worker when it misses 50,000 events/s, and the read side (``read``, ``bench/read_load.py``:
the hot read endpoints of ``tokenboard api`` at 64 concurrent clients with one process and
with ``--workers 2``, and ``/v1/overview`` while thousands of SSE clients are connected).
Every flag defaults to a ``BENCH_<FLAG>``
environment variable, so ``BENCH_EVENTS=500000 make bench`` works. Connections come from
``TOKENBOARD_*``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import shlex
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from bench.bytewax_weekly import run_bytewax
from bench.ceiling import run_ceiling
from bench.dataset import DatasetSpec, build_dataset, expected_path
from bench.faust_textbook import run_faust
from bench.flink_sql import peer_versions, run_flink
from bench.kafka_admin import delete_topics
from bench.latency import run_latency
from bench.memory import run_memory, run_snapshot_cost
from bench.procstats import machine
from bench.producers import run_producers
from bench.profiling import py_spy_binary
from bench.progress import say
from bench.quix_weekly import run_quix
from bench.ranker_tick import run_ranker_ticks
from bench.read_load import run_read_load
from bench.recovery import run_recovery
from bench.report import TARGET_RATE, RunReport, render
from bench.stage1_micro import run_stage1_micro
from bench.tokenboard_e2e import derived_topics, run_tokenboard
from bench.versions import code_fingerprint, package_versions, server_versions
from streams.settings import Settings

HERE = Path(__file__).resolve().parent
PHASES = (
    "ceiling",
    "tb1",
    "tb2",
    "faust",
    "quix",
    "bytewax",
    "flink",
    "latency",
    "memory",
    "snapshot",
    "ranker",
    "micro",
    "profile",
    "read",
    "recovery",
    "producers",
)
T = TypeVar("T")


def _env(name: str, default: Any) -> Any:
    raw = os.environ.get(f"BENCH_{name.upper()}")
    return type(default)(raw) if raw else default


def build_parser() -> argparse.ArgumentParser:
    """Flags; each defaults to ``BENCH_<NAME>`` or the built-in default."""
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    add = p.add_argument
    add("--events", type=int, default=_env("events", 2_000_000), help="dataset events")
    add("--models", type=int, default=_env("models", 500), help="models in the dataset")
    add("--weeks", type=int, default=_env("weeks", 4), help="ISO weeks the dataset spans")
    add("--partitions", type=int, default=_env("partitions", 8), help="usage partitions")
    add("--faust-seconds", type=float, default=_env("faust_seconds", 30.0),
        help="time budget of the textbook Faust agent")  # fmt: skip
    add("--quix-seconds", type=float, default=_env("quix_seconds", 90.0),
        help="time budget of Quix Streams")  # fmt: skip
    add("--bytewax-seconds", type=float, default=_env("bytewax_seconds", 90.0),
        help="time budget of Bytewax")  # fmt: skip
    add("--flink-seconds", type=float, default=_env("flink_seconds", 180.0),
        help="time budget of Flink SQL from its job's submission")  # fmt: skip
    add("--flink-python", default=_env("flink_python", ""),
        help="Python with apache-flink (default: a venv in --data-dir, made once)")  # fmt: skip
    add("--tokenboard-timeout", type=float, default=_env("tokenboard_timeout", 420.0),
        help="seconds a tokenboard run may take")  # fmt: skip
    add("--latency-rate", type=int, default=_env("latency_rate", 20_000))
    add("--latency-seconds", type=float, default=_env("latency_seconds", 30.0))
    add("--latency-low-rate", type=int, default=_env("latency_low_rate", 5_000),
        help="second latency run at a rate one worker sustains (0: skip)")  # fmt: skip
    add("--latency-low-seconds", type=float, default=_env("latency_low_seconds", 10.0))
    add("--latency-high-rate", type=int, default=_env("latency_high_rate", 50_000),
        help="third latency run, above one worker's capacity (0: skip)")  # fmt: skip
    add("--latency-high-seconds", type=float, default=_env("latency_high_seconds", 10.0))
    add("--memory-models", type=int, default=_env("memory_models", 10_000))
    add("--memory-weeks", type=int, default=_env("memory_weeks", 26))
    add("--snapshot-sizes", default=_env("snapshot_sizes", "1000,10000,100000"))
    add("--ranker-sizes", default=_env("ranker_sizes", "1000,10000,100000"),
        help="members of the week whose ranker tick is timed (bench/ranker_tick.py)")  # fmt: skip
    add("--profile", choices=["auto", "always", "never"], default=_env("profile", "auto"),
        help="py-spy one worker: auto = when 1 worker misses the target")  # fmt: skip
    add("--profile-seconds", type=float, default=_env("profile_seconds", 0.0),
        help="profile only this long (0: the whole dataset)")  # fmt: skip
    add("--read-seconds", type=float, default=_env("read_seconds", 5.0),
        help="seconds of load per read endpoint")  # fmt: skip
    add("--read-clients", type=int, default=_env("read_clients", 64),
        help="concurrent clients of the read endpoints")  # fmt: skip
    add("--read-streams", default=_env("read_streams", "1000,5000,10000"),
        help="SSE client counts to try (stops at the first that does not open)")  # fmt: skip
    add("--producer-events", type=int, default=int(_env("producer_events", "200000")),
        help="events (and spans) of each producer-side row")  # fmt: skip
    add("--recovery-sizes", default=_env("recovery_sizes", "1000,10000,100000"),
        help="table keys of the recovery phase (a new worker after a SIGKILL)")  # fmt: skip
    add("--skip", default=_env("skip", ""), help=f"comma list of {', '.join(PHASES)}")
    add("--dataset-prefix", default=_env("dataset_prefix", ""),
        help="reuse the dataset an earlier --keep-dataset run left under this prefix")  # fmt: skip
    add("--keep-dataset", action="store_true", help="do not delete the dataset topic")
    add("--results", default=_env("results", str(HERE / "RESULTS.md")))
    add("--findings", default=_env("findings", str(HERE / "FINDINGS.md")),
        help="hand-written analysis appended to the results")  # fmt: skip
    add("--data-dir", default=_env("data_dir", str(HERE / "data")))
    add("--render-from", default="",
        help="only re-render the results of an earlier run from its saved report")  # fmt: skip
    return p


async def _phase(report: RunReport, name: str, work: Callable[[], Awaitable[T]]) -> T | None:
    """Run one phase; a failure is recorded in the report and the run goes on."""
    say(f"\n== {name}")
    started = time.monotonic()
    try:
        return await work()
    except Exception as exc:
        traceback.print_exc()
        report.errors.append(f"{name}: {type(exc).__name__}: {exc}")
        return None
    finally:
        say(f"   ({time.monotonic() - started:.0f} s)")


def _command(argv: list[str]) -> str:
    env = " ".join(
        f"{name}={os.environ[name]}"
        for name in ("TOKENBOARD_KAFKA_BOOTSTRAP", "TOKENBOARD_REDIS_URL")
        if name in os.environ
    )
    line = f"{env} python -m bench.run {shlex.join(argv)}".strip()
    if "MAKELEVEL" in os.environ:
        line = f"make bench   # runs: {line}"
    return line


async def main_async(args: argparse.Namespace, argv: list[str]) -> int:
    """All phases, then the results file."""
    started = time.monotonic()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - set(PHASES)
    if unknown:
        raise SystemExit(f"unknown phase(s) in --skip: {', '.join(sorted(unknown))}")
    tag = "bench" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    data_dir = Path(args.data_dir)
    logs = data_dir / "logs" / tag
    base = Settings.from_env().replace(partitions=args.partitions)
    report = RunReport(
        command=_command(argv),
        started_utc=datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        machine=machine(),
        versions={**package_versions(), **peer_versions(), **await server_versions(base)},
        config={
            k: v
            for k, v in vars(args).items()
            if k not in ("results", "findings", "data_dir", "keep_dataset")
        },
    )
    report.config.update(
        flush_interval_ms=base.flush_interval_ms,
        snapshot_interval_ms=base.snapshot_interval_ms,
        block_size=base.block_size,
    )
    code_at_start = code_fingerprint(HERE.parent)
    report.versions["code measured"] = code_at_start
    say(f"benchmark {tag} on {code_at_start}: logs in {logs}")
    prefix = args.dataset_prefix or tag
    settings = base.replace(topic_prefix=prefix)
    spec = DatasetSpec(args.events, args.models, args.weeks, args.partitions)
    try:
        say("\n== dataset")
        expected = await build_dataset(settings, spec, data_dir, reuse=bool(args.dataset_prefix))
        report.dataset = expected
        tp = report.throughput
        if "ceiling" not in skip:
            r = await _phase(report, "ceiling", lambda: run_ceiling(settings, expected, f"{tag}-c"))
            if r:
                tp["ceiling"] = r
        for workers, key in ((1, "tb1"), (2, "tb2")):
            if key in skip:
                continue
            out = await _phase(
                report,
                f"tokenboard, {workers} worker(s)",
                lambda w=workers, k=key: run_tokenboard(  # type: ignore[misc]
                    settings,
                    expected,
                    workers=w,
                    run_id=f"{tag}-{k}",
                    log_dir=logs,
                    timeout_s=args.tokenboard_timeout,
                ),
            )
            if out:
                tp[key] = out[0]
        if "faust" not in skip:
            r = await _phase(
                report,
                "Faust textbook",
                lambda: run_faust(
                    settings,
                    expected,
                    app_id=f"{tag}-faust",
                    max_seconds=args.faust_seconds,
                    data_dir=data_dir,
                ),
            )
            if r:
                tp["faust"] = r
        if "quix" not in skip:
            r = await _phase(
                report,
                "Quix Streams",
                lambda: run_quix(
                    settings,
                    expected,
                    group=f"{tag}-quix",
                    max_seconds=args.quix_seconds,
                    data_dir=data_dir,
                ),
            )
            if r:
                tp["quix"] = r
        if "bytewax" not in skip:
            r = await _phase(
                report,
                "Bytewax",
                lambda: run_bytewax(
                    settings,
                    expected,
                    run_id=f"{tag}-bytewax",
                    max_seconds=args.bytewax_seconds,
                    data_dir=data_dir,
                ),
            )
            if r:
                tp["bytewax"] = r
        if "flink" not in skip:
            r = await _phase(
                report,
                "Flink SQL",
                lambda: run_flink(
                    settings,
                    expected,
                    run_id=f"{tag}-flink",
                    max_seconds=args.flink_seconds,
                    data_dir=data_dir,
                    python=args.flink_python,
                ),
            )
            if r:
                tp["flink"] = r
        if "latency" not in skip:
            runs = [(args.latency_rate, args.latency_seconds)]
            if args.latency_low_rate:
                runs.append((args.latency_low_rate, args.latency_low_seconds))
            if args.latency_high_rate:
                runs.append((args.latency_high_rate, args.latency_high_seconds))
            for rate, seconds in runs:
                lat = await _phase(
                    report,
                    f"latency at {rate:,} events/s",
                    lambda r=rate, s=seconds: run_latency(  # type: ignore[misc]
                        base,
                        run_id=f"{tag}-lat{r}",
                        rate=r,
                        seconds=s,
                        tick_ms=50,
                        partitions=args.partitions,
                        log_dir=logs,
                    ),
                )
                if lat:
                    report.latency.append(lat[0])
        if "memory" not in skip:
            report.memory = await _phase(
                report,
                f"memory, {args.memory_models:,} models x {args.memory_weeks} weeks",
                lambda: run_memory(
                    base,
                    run_id=f"{tag}-mem",
                    models=args.memory_models,
                    weeks=args.memory_weeks,
                    partitions=args.partitions,
                    log_dir=logs,
                ),
            )
        if "snapshot" not in skip:
            sizes = [int(s) for s in args.snapshot_sizes.split(",") if s.strip()]
            costs = await _phase(
                report,
                "snapshot cost",
                lambda: run_snapshot_cost(base, run_id=f"{tag}-snap", sizes=sizes),
            )
            report.snapshots = costs or []
        if "ranker" not in skip:
            sizes = [int(s) for s in args.ranker_sizes.split(",") if s.strip()]
            ticks = await _phase(
                report,
                "ranker tick",
                lambda: run_ranker_ticks(base, run_id=f"{tag}-rank", sizes=sizes),
            )
            report.ranker_ticks = ticks or []
            report.errors += [
                f"ranker tick, {t.members:,}: {t.error}" for t in ticks or [] if t.error
            ]
        if "micro" not in skip:
            report.micro = (
                await _phase(report, "stage 1 micro", lambda: asyncio.to_thread(run_stage1_micro))
                or []
            )
        if "read" not in skip:
            report.read = await _phase(
                report,
                "read side (tokenboard api under load)",
                lambda: run_read_load(
                    base,
                    run_id=f"{tag}-read",
                    log_dir=logs,
                    seconds=args.read_seconds,
                    clients=args.read_clients,
                    stream_counts=tuple(int(n) for n in args.read_streams.split(",") if n.strip()),
                ),
            )
        if "recovery" not in skip:
            report.recovery = await _phase(
                report,
                "table recovery after a SIGKILL",
                lambda: run_recovery(
                    base,
                    run_id=f"{tag}-recov",
                    log_dir=logs,
                    sizes=[int(n) for n in args.recovery_sizes.split(",") if n.strip()],
                ),
            )
        if "producers" not in skip:
            report.producers = await _phase(
                report,
                "producers (SDK, gateway, OTLP)",
                lambda: run_producers(base, run_id=f"{tag}-prod", events=args.producer_events),
            )
        tb1 = tp.get("tb1")
        wanted = args.profile == "always" or (
            args.profile == "auto" and (tb1 is None or tb1.rate < TARGET_RATE)
        )
        if "profile" not in skip and wanted and py_spy_binary():
            out = await _phase(
                report,
                "profile of one worker (py-spy)",
                lambda: run_tokenboard(
                    settings,
                    expected,
                    workers=1,
                    run_id=f"{tag}-prof",
                    log_dir=logs,
                    timeout_s=args.tokenboard_timeout,
                    profile_path=data_dir / f"{tag}-worker.pyspy.txt",
                    max_seconds=args.profile_seconds or None,
                ),
            )
            if out:
                report.profile = out[1]
    finally:
        say("\n== cleanup")
        ours = {*derived_topics(settings), settings.usage_topic}
        kept: set[str] = set()
        if args.keep_dataset or args.dataset_prefix:
            kept.add(settings.usage_topic)
        else:
            expected_path(data_dir, prefix).unlink(missing_ok=True)
        # The dataset topic's name contains the tag too: it must not match the second test.
        deleted = await delete_topics(base, lambda t: t not in kept and (t in ours or tag in t))
        say(f"   deleted {len(deleted)} topics")
    report.duration_s = time.monotonic() - started
    report.load_end = os.getloadavg()
    code_at_end = code_fingerprint(HERE.parent)
    if code_at_end != code_at_start:
        report.errors.append(
            f"the code changed during the run ({code_at_start} → {code_at_end}): "
            "later phases measured other code than earlier ones"
        )
    saved = data_dir / f"{tag}.report.pickle"
    saved.write_bytes(pickle.dumps(report))
    write_results(report, args)
    say(f"   (report saved in {saved}; --render-from it after editing {args.findings})")
    return 1 if report.errors else 0


def write_results(report: RunReport, args: argparse.Namespace) -> None:
    """Render the results file, with the hand-written findings appended."""
    findings = Path(args.findings)
    report.findings = findings.read_text() if findings.exists() else ""
    report.config.pop("render_from", None)
    Path(args.results).write_text(render(report))
    say(f"\nresults written to {args.results} ({report.duration_s / 60:.1f} min run)")


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.render_from:
        report = pickle.loads(Path(args.render_from).read_bytes())  # our own file
        write_results(report, args)
        return 0
    return asyncio.run(main_async(args, argv))


if __name__ == "__main__":
    sys.exit(main())
