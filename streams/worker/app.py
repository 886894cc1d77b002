"""``tokenboard worker``: the command that runs one worker process.

The worker itself (Faust app, fold, snapshots, ranker, pre-aggregator) is
:class:`streams.worker.worker.Worker`; :func:`build_app` and the names below stay importable
from here for the CLI, tests and tools.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from pathlib import Path

import faust

from streams.catalog import CatalogError, load_catalog
from streams.http.web import PortInUse, bind_listener
from streams.prices import PriceError, load_prices
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker.faust_app import faust_credentials as _faust_credentials
from streams.worker.fold import CHANGELOG_BUFFER_MAX
from streams.worker.log_noise import quiet_faust_noise
from streams.worker.worker import Worker, WorkerParts, build_app

__all__ = [
    "CHANGELOG_BUFFER_MAX",
    "DEFAULT_WORKER_WEB_PORT",
    "Worker",
    "WorkerParts",
    "_faust_credentials",
    "bind_health_port",
    "build_app",
    "run_worker",
]

log = logging.getLogger("tokenboard.worker")

DEFAULT_WORKER_WEB_PORT = Settings().worker_web_port


def bind_health_port(settings: Settings) -> socket.socket | None:
    """The health and metrics socket of a worker, bound before anything else starts.

    A negative port disables it; 0 takes any free port. When the default port is taken (a
    second worker on this machine) the worker takes a free one and says which; a port set
    on purpose that is taken stops the worker with one line naming the setting. The bound
    port goes to ``TOKENBOARD_WORKER_PORT_FILE`` when that is set, for supervisors and tests.
    """
    port = settings.worker_web_port
    if port < 0:
        return None
    try:
        listener = bind_listener(port)
    except PortInUse:
        if port != DEFAULT_WORKER_WEB_PORT:
            raise
        listener = bind_listener(0)
        print(
            f"worker: port {port} is in use (another worker on this machine?); health and "
            f"metrics on port {listener.getsockname()[1]} instead "
            "(TOKENBOARD_WORKER_WEB_PORT chooses one)",
            file=sys.stderr,
        )
    bound = int(listener.getsockname()[1])
    log.info("health and metrics on http://127.0.0.1:%d (/healthz, /readyz, /metrics)", bound)
    if settings.worker_port_file:
        # Written whole or not at all: a reader polls for it.
        target = Path(settings.worker_port_file)
        partial = target.with_name(target.name + ".tmp")
        partial.write_text(f"{bound}\n")
        partial.replace(target)
    return listener


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler: run one worker until SIGTERM/SIGINT."""
    if getattr(args, "web_port", None) is not None:
        settings = settings.replace(worker_web_port=args.web_port)
    try:
        # Checked before anything starts: a bad override file is one line naming it.
        load_catalog(settings.catalog_path or None)
        load_prices(settings.prices_path or None)
    except (CatalogError, PriceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        health = bind_health_port(settings)
    except PortInUse:
        print(
            f"error: port {settings.worker_web_port} for the worker's health and metrics is "
            "in use: set TOKENBOARD_WORKER_WEB_PORT (or --web-port) to a free port, "
            "or 0 for any",
            file=sys.stderr,
        )
        return 2
    asyncio.run(ensure_topics(settings))
    quiet_faust_noise()
    worker = build_app(settings, health)
    runner = faust.Worker(worker.app, loglevel=getattr(args, "loglevel", "warning"), quiet=True)
    # With its terminal spinner Faust lowers the root logger to DEBUG, and every debug line
    # of aiokafka and mode is then built and dropped: several percent of a worker's CPU.
    runner.spinner = None
    runner.execute_from_commandline()
    return 0
