"""What users would pick instead: Quix Streams, weekly token sums by model.

``group_by("model")`` (a repartition topic, as Quix requires for re-keyed state), then a
7-day tumbling window summing ``prompt_tokens + completion_tokens`` with ``.current()``
(one update per event, like a live leaderboard), event time from the ``ts`` field, RocksDB
state with changelog topics. Run as a child (``python -m bench.quix_weekly ...``) by
:func:`run_quix`; the child counts events after the repartition and stops at the target or
its time budget. Quix's windows, like Faust's, are aligned to the epoch (Thursday), not
to ISO weeks: the work per event is the same.
"""

from __future__ import annotations

import argparse
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.child import SelfTimer, progress_file, run_child
from bench.dataset import Expected
from bench.figures import Throughput
from bench.progress import say
from streams.settings import Settings


def _event_time(value: Any, headers: Any, timestamp: float, timestamp_type: Any) -> int:
    return int(value["ts"])


def _tokens(value: dict[str, Any]) -> int:
    return int(value["prompt_tokens"]) + int(value["completion_tokens"])


def main(argv: list[str] | None = None) -> None:
    """Child entry point."""
    from quixstreams import Application

    parser = argparse.ArgumentParser(prog="bench.quix_weekly")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--target", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)

    timer = SelfTimer(
        target=args.target,
        max_seconds=args.max_seconds,
        progress_path=progress_file(Path(args.result)),
    )
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    topic = app.topic(args.topic, value_deserializer="json", timestamp_extractor=_event_time)
    result_path = Path(args.result)

    def count(value: dict[str, Any]) -> None:
        if timer.tick() and not result_path.exists():
            timer.write(result_path)
            app.stop()

    sdf = app.dataframe(topic)
    sdf = sdf.group_by("model")
    sdf = sdf.update(count)
    sdf = sdf.apply(_tokens)
    # A grace period past the dataset's span: an exact weekly sum must not drop events that
    # the repartition delivers out of order (Quix would log a warning for each).
    sdf = sdf.tumbling_window(timedelta(days=7), grace_ms=timedelta(days=35)).sum().current()
    app.run(sdf)


async def run_quix(
    settings: Settings,
    expected: Expected,
    *,
    group: str,
    max_seconds: float,
    data_dir: Path,
) -> Throughput:
    """Measure Quix Streams over the dataset (or its first ``max_seconds``)."""
    state_dir = data_dir / f"{group}-state"
    try:
        result = await run_child(
            "Quix Streams: group_by(model) + tumbling 7-day sum",
            "bench.quix_weekly",
            [
                "--bootstrap",
                settings.kafka_bootstrap,
                "--topic",
                expected.topic,
                "--group",
                group,
                "--state-dir",
                str(state_dir),
                "--target",
                str(expected.events),
                "--max-seconds",
                str(max_seconds),
                "--result",
                str(data_dir / f"{group}.json"),
            ],
            data_dir / f"{group}.json",
            data_dir / "logs" / f"{group}.log",
            timeout_s=max_seconds + 180,
            target=expected.events,
            notes=["no Redis output; RocksDB state and changelog, at-least-once"],
        )
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    say(f"  quix streams: {result.rate:,.0f} events/s over {result.events:,} events")
    return result


if __name__ == "__main__":
    main()
