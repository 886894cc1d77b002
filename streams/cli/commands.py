"""Arguments of the pipeline commands; their handlers live next to the code they run."""

from __future__ import annotations

import argparse

from streams.cli.main import register


@register(
    "worker", "streams.worker.app", "run_worker", "run a stream worker (Faust + pre-aggregator)"
)
def _worker(p: argparse.ArgumentParser) -> None:
    p.add_argument("--web-port", type=int, help="port of /healthz, /readyz and /metrics")
    p.add_argument("--loglevel", default="warning", help="Faust log level")


@register(
    "replay", "streams.dev.replay", "run_replay", "replay a scenario table through the pipeline"
)
def _replay(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="scenario JSON (see tests/data/README.md)")
    p.add_argument("--events", type=int, default=20, help="events per (week, model) cell")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for Redis")
    p.add_argument("--no-wait", action="store_true", help="only produce, do not wait")


@register("report", "streams.store.report", "run_report", "the weekly report (text or JSON)")
def _report(p: argparse.ArgumentParser) -> None:
    p.add_argument("--week", default="last", help="current, last or an ISO week like 2026-W47")
    p.add_argument("--top", type=int, help="models in the top list (default TOKENBOARD_TOP_N)")
    p.add_argument("--json", action="store_true", help="print the JSON contract")


@register("ingest", "streams.http.ingest", "run_ingest", "HTTP ingest gateway (POST /v1/events)")
def _ingest(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, help="listen port (default TOKENBOARD_INGEST_PORT)")
    p.add_argument("--host", default="0.0.0.0", help="listen address")


@register("simulate", "streams.dev.simulate", "run_simulate", "produce realistic synthetic traffic")
def _simulate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate", type=float, default=5000, help="events per second")
    p.add_argument("--duration", type=float, default=60, help="seconds (0 = until Ctrl-C)")
    p.add_argument("--models", type=int, default=0, help="catalog models to use (0 = all)")
    p.add_argument("--seed", type=int, default=1, help="random seed")


@register("api", "streams.http.api", "run_api", "HTTP read API and dashboard")
def _api(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, help="listen port (default TOKENBOARD_API_PORT)")
    p.add_argument("--host", default="0.0.0.0", help="listen address")


@register("top", "streams.cli.views", "run_top", "leaderboard table of a week")
def _top(p: argparse.ArgumentParser) -> None:
    p.add_argument("--by", choices=["model", "country", "vendor"], default="model")
    p.add_argument("--week", default="current", help="current, last or an ISO week like 2026-W47")
    p.add_argument("-n", "--top", type=int, default=10, help="rows")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


@register("history", "streams.cli.views", "run_history", "weekly series of one model or country")
def _history(p: argparse.ArgumentParser) -> None:
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--model", help="model id, e.g. deepseek/deepseek-v4-flash")
    target.add_argument("--country", help="ISO country code, e.g. CN")
    target.add_argument("--vendor", help="vendor name, e.g. DeepSeek")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


@register("watch", "streams.cli.views", "run_watch", "follow ranking changes and alerts live")
def _watch(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from-beginning", action="store_true", help="replay the topics' history")
    p.add_argument("--limit", type=int, default=0, help="stop after N events (0 = never)")
    p.add_argument("--json", action="store_true", help="print each event as JSON")
