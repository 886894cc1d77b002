"""Arguments of the pipeline commands; their handlers live next to the code they run."""

from __future__ import annotations

import argparse

from streams.cli import register


@register("worker", "streams.worker", "run_worker", "run a stream worker (Faust + pre-aggregator)")
def _worker(p: argparse.ArgumentParser) -> None:
    p.add_argument("--web-port", type=int, help="port of /healthz, /readyz and /metrics")
    p.add_argument("--loglevel", default="warning", help="Faust log level")
