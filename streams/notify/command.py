"""``tokenboard notify``: post ranking changes and alerts to webhooks and Slack until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import threading

from aggregations.errors import InvalidInput
from streams.cli.shutdown import close_loop
from streams.notify.config import NotifyConfig, load_config
from streams.notify.notifier import Notifier
from streams.settings import Settings

__all__ = ["run_notify"]

log = logging.getLogger("tokenboard.notify")

#: Seconds the lanes get, after a second Ctrl-C cancelled them, to close their clients.
CLOSE_S = 5.0


def run_notify(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler: deliver until Ctrl-C (or SIGTERM); ``--check`` only reads the config."""
    path = args.config or settings.notify_config
    if not path:
        print(
            "error: no notify config: pass --config FILE or set TOKENBOARD_NOTIFY_CONFIG",
            file=sys.stderr,
        )
        return 2
    try:
        config = load_config(path)
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        for line in describe_targets(config):
            print(line)
        return 0
    _log_to_stderr()
    if args.metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port)
        log.info("metrics on http://127.0.0.1:%d/metrics", args.metrics_port)
    for line in describe_targets(config):
        log.info("target %s", line)
    return _run(Notifier(settings, config))


def describe_targets(config: NotifyConfig) -> list[str]:
    """One line per target, without its URL's secrets: name, kind, host, filters, policy."""
    lines = []
    for t in config.targets:
        f = t.filters
        wants = [
            f"kinds={','.join(sorted(f.kinds))}" if f.kinds else "",
            f"dimensions={','.join(sorted(f.dimensions))}" if f.dimensions else "",
            f"phases={','.join(sorted(f.phases))}" if f.phases else "",
            f"min_severity={f.min_severity}",
        ]
        lines.append(
            f"{t.name} ({t.kind} to {t.host}): {' '.join(w for w in wants if w)};"
            f" {t.max_attempts} attempts, start {t.start}"
        )
    return lines


def _log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s notify %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _run(notifier: Notifier) -> int:
    """Run until the first Ctrl-C, which lets requests in flight finish (each within its
    target's timeout); a second one abandons them. Exits anyway if a client will not close."""
    loop = asyncio.new_event_loop()
    main = loop.create_task(notifier.run())
    interrupts = 0

    def interrupted() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            log.info("stopping: finishing the requests in flight (Ctrl-C again to quit now)")
            notifier.stop()
        else:
            main.cancel()

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, interrupted)

    def summary() -> None:
        for line in notifier.summary():
            log.info("%s", line)

    try:
        # An error (Kafka unreachable at start, a lane that failed) propagates to
        # streams.cli.main, which prints it; the clients are closed first.
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(main)
    finally:
        close_loop(
            loop,
            CLOSE_S,
            then=summary,
            exit_code=lambda: 0 if main.done() and not main.cancelled() else 1,
        )
    return 0
