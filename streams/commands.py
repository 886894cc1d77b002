"""Arguments of the pipeline commands; their handlers live next to the code they run."""

from __future__ import annotations

import argparse

from streams.cli import register


@register("worker", "streams.worker", "run_worker", "run a stream worker (Faust + pre-aggregator)")
def _worker(p: argparse.ArgumentParser) -> None:
    p.add_argument("--web-port", type=int, help="port of /healthz, /readyz and /metrics")
    p.add_argument("--loglevel", default="warning", help="Faust log level")


@register("replay", "streams.replay", "run_replay", "replay a scenario table through the pipeline")
def _replay(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="scenario JSON (see tests/data/README.md)")
    p.add_argument("--events", type=int, default=20, help="events per (week, model) cell")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for Redis")
    p.add_argument("--no-wait", action="store_true", help="only produce, do not wait")


@register("report", "streams.reporting", "run_report", "the weekly report (text or JSON)")
def _report(p: argparse.ArgumentParser) -> None:
    p.add_argument("--week", default="last", help="current, last or an ISO week like 2026-W47")
    p.add_argument("--top", type=int, help="models in the top list (default TOKENBOARD_TOP_N)")
    p.add_argument("--json", action="store_true", help="print the JSON contract")
