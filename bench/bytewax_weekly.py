"""A peer on the same topic: Bytewax, weekly token sums by model.

The dataflow Bytewax's documentation teaches: ``KafkaSource`` on the dataset topic from
the beginning (``tail=False``: the input ends at the end of every partition), a ``map``
that decodes the JSON value into ``(model, (ts, tokens))``, then ``fold_window`` with an
``EventClock`` on ``ts`` and a 7-day ``TumblingWindower`` aligned to a Monday 00:00 UTC,
so its windows are ISO weeks. One worker in one process (``bytewax.run``'s default).

Run as a child (``python -m bench.bytewax_weekly ...``) by :func:`run_bytewax`. The child
counts events in the decode step; its clock stops at the last of the dataset's events, and
it stops early when its time budget is spent. When it saw every event it lets the input
end, which closes every window, and writes the window sums with its result, so the parent
can check them against the dataset's (week, model) totals.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import operator
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.child import SelfTimer, progress_file, run_child, write_result
from bench.dataset import Expected
from bench.figures import Throughput
from bench.progress import say
from bench.weekly_windows import ISO_WEEK_ALIGN, aligned_window_start_ms, check_windows
from streams.settings import Settings

NAME = "Bytewax: fold_window 7-day tumbling SUM(tokens) by model"
#: Events reach a model's window out of event-time order by up to the skew between the
#: partitions the worker reads in turn; waiting past the dataset's span keeps the sums
#: exact (like Quix's grace period), and the end of the input closes every window anyway.
WAIT_FOR_LATE = timedelta(days=35)


Built = tuple[Any, SelfTimer, dict[str, Any], list[Any], list[Any]]


def build_flow(args: argparse.Namespace) -> Built:
    """The dataflow, its timer, the frozen measurement, and its window sums and late events.

    The measurement is frozen at the target count (the clock stops at the last event); the
    window sums arrive after it, when the end of the input closes the windows.
    """
    import bytewax.operators as op
    from bytewax.connectors.kafka import KafkaSource
    from bytewax.dataflow import Dataflow
    from bytewax.operators import windowing as win
    from bytewax.testing import TestingSink

    timer = SelfTimer(
        target=args.target,
        max_seconds=args.max_seconds,
        progress_path=progress_file(Path(args.result)),
    )
    result_path = Path(args.result)
    measured: dict[str, Any] = {}

    def decode(msg: Any) -> tuple[str, tuple[int, int]]:
        event = json.loads(msg.value)
        if not measured and timer.tick():
            measured.update(timer.result())
            if not measured["complete"]:
                timer.write(result_path, {"note": "time budget spent"})
                os._exit(0)
        return event["model"], (event["ts"], event["prompt_tokens"] + event["completion_tokens"])

    flow = Dataflow("bench_bytewax_weekly")
    messages = op.input(
        "kafka",
        flow,
        KafkaSource([args.bootstrap], [args.topic], tail=False, raise_on_errors=True),
    )
    keyed = op.map("decode", messages, decode)
    clock = win.EventClock(
        ts_getter=lambda v: datetime.fromtimestamp(v[0] / 1000, tz=UTC),
        wait_for_system_duration=WAIT_FOR_LATE,
    )
    windower = win.TumblingWindower(length=timedelta(days=7), align_to=ISO_WEEK_ALIGN)
    sums = win.fold_window(
        "weekly_sum",
        keyed,
        clock,
        windower,
        builder=int,
        folder=lambda total, v: total + v[1],
        merger=operator.add,
        ordered=False,  # a sum does not depend on the order: no buffering until the watermark
    )
    windows: list[tuple[str, tuple[int, int]]] = []
    late: list[tuple[str, tuple[int, Any]]] = []
    op.output("sums", sums.down, TestingSink(windows))
    op.output("late", sums.late, TestingSink(late))
    return flow, timer, measured, windows, late


def main(argv: list[str] | None = None) -> None:
    """Child entry point."""
    from bytewax.testing import run_main

    parser = argparse.ArgumentParser(prog="bench.bytewax_weekly")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--target", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    flow, timer, measured, windows, late = build_flow(args)
    # run_main is bytewax.run's single-worker execution in this thread, without its CLI.
    run_main(flow)
    result = measured or timer.result()  # the input ended before the target count
    result["windows"] = [
        (aligned_window_start_ms(window_id), model, total) for model, (window_id, total) in windows
    ]
    result["late"] = len(late)
    write_result(Path(args.result), result)


async def run_bytewax(
    settings: Settings,
    expected: Expected,
    *,
    run_id: str,
    max_seconds: float,
    data_dir: Path,
) -> Throughput:
    """Measure Bytewax over the dataset (or its first ``max_seconds``)."""
    if importlib.util.find_spec("bytewax") is None:
        return Throughput(
            name=NAME,
            events=0,
            seconds=0.0,
            complete=False,
            error="bytewax is not installed in this interpreter "
            "(it comes with the bench extra: pip install -e '.[bench]')",
        )
    result_path = data_dir / f"{run_id}.json"
    result = await run_child(
        NAME,
        "bench.bytewax_weekly",
        [
            "--bootstrap",
            settings.kafka_bootstrap,
            "--topic",
            expected.topic,
            "--target",
            str(expected.events),
            "--max-seconds",
            str(max_seconds),
            "--result",
            str(result_path),
        ],
        result_path,
        data_dir / "logs" / f"{run_id}.log",
        timeout_s=max_seconds + 180,
        target=expected.events,
        notes=["one worker, no recovery (state in memory), stdlib json.loads as in its docs"],
    )
    if result.complete and result_path.exists():
        data = json.loads(result_path.read_text())
        rows = [(int(s), str(m), int(t)) for s, m, t in data.get("windows", [])]
        result.exact, note = check_windows(rows, expected.cell_tokens)
        result.notes.append(note)
        if data.get("late"):
            result.notes.append(f"{data['late']:,} events dropped as late")
    say(f"  bytewax: {result.rate:,.0f} events/s over {result.events:,} events")
    return result


if __name__ == "__main__":
    main()
