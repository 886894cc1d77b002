"""The textbook Faust approach: one agent doing ``table[model] += tokens`` per event.

The table is windowed (``tumbling(7 days)``, relative to the event's ``ts``), in-memory,
changelog-backed, with the dataset topic as source: what the Faust documentation teaches.
Run as a child process (``python -m bench.faust_textbook ...``) by :func:`run_faust`; the
child counts events in the agent and stops at the target count or its time budget.
"""

from __future__ import annotations

import argparse
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.child import SelfTimer, progress_file, run_child
from bench.dataset import Expected
from bench.figures import Throughput
from bench.progress import say
from streams.settings import Settings


def build(args: argparse.Namespace) -> Any:
    """The Faust app of the textbook approach."""
    import faust

    timer = SelfTimer(
        target=args.target,
        max_seconds=args.max_seconds,
        progress_path=progress_file(Path(args.result)),
    )
    app = faust.App(
        args.app_id,
        broker=";".join(f"kafka://{h}" for h in args.bootstrap.split(",")),
        store="memory://",
        topic_partitions=args.partitions,
        topic_replication_factor=1,
        web_enabled=False,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=0,
    )
    usage = app.topic(args.topic, key_type=bytes, key_serializer="raw", value_serializer="json")
    windowed: Any = app.Table("tokens", default=int, partitions=args.partitions).tumbling(
        timedelta(days=7), expires=timedelta(days=35)
    )
    # Windows follow the event's own time, like the weekly sums everywhere else.
    tokens = windowed.relative_to(lambda event: event.value["ts"] / 1000)

    @app.agent(usage)
    async def count_tokens(stream: Any) -> None:
        async for event in stream:
            tokens[event["model"]] += event["prompt_tokens"] + event["completion_tokens"]
            if timer.tick():
                timer.write(Path(args.result))
                os._exit(0)

    return app


def main(argv: list[str] | None = None) -> None:
    """Child entry point."""
    import faust

    parser = argparse.ArgumentParser(prog="bench.faust_textbook")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--target", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    app = build(args)
    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.spinner = None  # its handler would turn the root logger to DEBUG
    worker.execute_from_commandline()


async def run_faust(
    settings: Settings,
    expected: Expected,
    *,
    app_id: str,
    max_seconds: float,
    data_dir: Path,
) -> Throughput:
    """Measure the textbook agent over the dataset (or its first ``max_seconds``)."""
    result = await run_child(
        "Faust textbook: agent + windowed table[model] += tokens",
        "bench.faust_textbook",
        [
            "--bootstrap",
            settings.kafka_bootstrap,
            "--topic",
            expected.topic,
            "--app-id",
            app_id,
            "--partitions",
            str(expected.partitions),
            "--target",
            str(expected.events),
            "--max-seconds",
            str(max_seconds),
            "--result",
            str(data_dir / f"{app_id}.json"),
        ],
        data_dir / f"{app_id}.json",
        data_dir / "logs" / f"{app_id}.log",
        timeout_s=max_seconds + 180,
        target=expected.events,
        notes=["no Redis output; log spinner off as with `-l info` (it sets root to DEBUG)"],
    )
    say(f"  faust textbook: {result.rate:,.0f} events/s over {result.events:,} events")
    return result


if __name__ == "__main__":
    main()
