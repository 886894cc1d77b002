"""The ``tokenboard`` command table, as plain data.

Each :class:`Command` names its handler as ``"module:function"``: the module is imported only
when that command runs, so ``tokenboard stack status`` never loads Faust or aiohttp, and
:meth:`Command.resolve` turns the name into the real function (a unit test resolves every
one, so a wrong name or a flag the handler reads but the parser never declares fails there).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aggregations.export import FORMATS
from aggregations.rankings import ORDERS
from aggregations.totals import RANKED_DIMENSIONS
from streams.settings import BOUNDS, Settings

__all__ = ["COMMANDS", "Command", "Handler"]

Handler = Callable[[argparse.Namespace, Settings], int]
Arguments = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: its name, help line, flags and handler."""

    name: str
    help: str
    handler: str
    arguments: Arguments
    #: Whether it takes the --kafka/--redis/... flags that override TOKENBOARD_* variables.
    connections: bool = True

    def resolve(self) -> Handler:
        """Import the handler's module and return the handler."""
        module, _, function = self.handler.partition(":")
        handler: Handler = getattr(importlib.import_module(module), function)
        return handler


def at_least(
    minimum: float, kind: type[int] | type[float] = int, maximum: float | None = None
) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` no smaller than ``minimum`` and, when given, no
    larger than ``maximum`` (one clear error)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is below the minimum {minimum:g}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{text} is above the maximum {maximum:g}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def connection_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that override single TOKENBOARD_* variables (see :data:`CONNECTION_FIELDS`)."""
    group = parser.add_argument_group("connections (override TOKENBOARD_* variables)")
    group.add_argument("--kafka", dest="kafka_bootstrap", help="Kafka bootstrap servers")
    group.add_argument("--redis", dest="redis_url", help="Redis URL")
    group.add_argument("--topic-prefix", dest="topic_prefix", help="prefix of every topic")
    group.add_argument("--redis-prefix", dest="redis_prefix", help="prefix of every Redis key")
    group.add_argument("--partitions", type=int, help="partitions of the tokenboard topics")
    group.add_argument("--run-dir", dest="run_dir", help="local stack run folder")


#: Settings fields a command line may override (the connection flags' destinations).
CONNECTION_FIELDS = (
    "kafka_bootstrap",
    "redis_url",
    "topic_prefix",
    "redis_prefix",
    "partitions",
    "run_dir",
)


def _stack(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["up", "down", "status", "logs", "reset"])
    p.add_argument("service", nargs="?", choices=["kafka", "redis"], help="for logs")
    p.add_argument("-n", "--lines", type=int, default=40, help="log lines to show")
    p.add_argument(
        "--brokers",
        type=at_least(1),
        help="for up: a KRaft cluster of N nodes (RF min(N, 3), min ISR one less); later "
        "commands of the run folder find them by themselves",
    )


def _topics(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["create"])
    p.add_argument("--replication", type=int, help="default TOKENBOARD_REPLICATION")


def _no_arguments(p: argparse.ArgumentParser) -> None:
    """A command without flags of its own."""


def _worker(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--web-port", type=int, help="port of /healthz, /readyz and /metrics (0: any free port)"
    )
    p.add_argument("--loglevel", default="warning", help="Faust log level")


def _replay(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="scenario JSON (see tests/data/README.md)")
    p.add_argument("--events", type=at_least(1), default=20, help="events per (week, model) cell")
    p.add_argument(
        "--timeout", type=at_least(0, float), default=180.0, help="seconds to wait for Redis"
    )
    p.add_argument("--no-wait", action="store_true", help="only produce, do not wait")


def _report(p: argparse.ArgumentParser) -> None:
    p.add_argument("--week", default="last", help="current, last or an ISO week like 2026-W47")
    p.add_argument(
        "--top", type=at_least(1), help="models in the top list (default TOKENBOARD_TOP_N)"
    )
    p.add_argument("--json", action="store_true", help="print the JSON contract")


def _ingest(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, help="listen port (default TOKENBOARD_INGEST_PORT)")
    p.add_argument(
        "--host",
        help="listen address (default 0.0.0.0 with TOKENBOARD_API_KEYS, 127.0.0.1 without)",
    )
    p.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="listen on a non-loopback address without API keys "
        "(TOKENBOARD_INGEST_ALLOW_ANONYMOUS=1)",
    )
    p.add_argument(
        "--workers",
        # The setting's own bounds: a flag and a variable with one value refuse it alike.
        type=at_least(1, maximum=BOUNDS["ingest_workers"][1]),
        help="processes sharing the port with SO_REUSEPORT, each with its own Kafka producer "
        "(default TOKENBOARD_INGEST_WORKERS)",
    )
    # Set by --workers for its child processes.
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)


def _api(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, help="listen port (default TOKENBOARD_API_PORT)")
    p.add_argument("--host", default="0.0.0.0", help="listen address")
    p.add_argument(
        "--workers",
        type=at_least(1, maximum=BOUNDS["api_workers"][1]),
        help="processes sharing the port with SO_REUSEPORT (default TOKENBOARD_API_WORKERS)",
    )
    # Set by --workers for its child processes.
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)


def _simulate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate", type=at_least(0.001, float), default=5000, help="events per second")
    p.add_argument(
        "--duration", type=at_least(0, float), default=60, help="seconds (0 = until Ctrl-C)"
    )
    p.add_argument("--models", type=at_least(0), default=0, help="catalog models to use (0 = all)")
    p.add_argument("--seed", type=int, default=1, help="random seed")


class _DimensionOrOrder(argparse.Action):
    """``--by``: a dimension (what is ranked) or ``tokens``/``spend`` (by what)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, "order" if values in ORDERS else "by", values)


def _top(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--by", dest="order", choices=[*RANKED_DIMENSIONS, *ORDERS], default="tokens",
        action=_DimensionOrOrder,
        help="what is ranked (as --dim), or by what: tokens (the default) or spend (the"
        " members with a price, by cost); give it twice for both, e.g. --by country --by spend",
    )  # fmt: skip
    p.add_argument(
        "--dim", dest="by", choices=list(RANKED_DIMENSIONS), default="model",
        help="what is ranked (apps: the events' app; events without one are not ranked)",
    )  # fmt: skip
    p.add_argument("--week", default="current", help="current, last or an ISO week like 2026-W47")
    p.add_argument("-n", "--top", type=at_least(1), default=10, help="rows")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _history(p: argparse.ArgumentParser) -> None:
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--model", help="model id, e.g. deepseek/deepseek-v4-flash")
    target.add_argument("--country", help="ISO country code, e.g. CN")
    target.add_argument("--vendor", help="vendor name, e.g. DeepSeek")
    target.add_argument("--app", help="app name, e.g. support-bot")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--week", default="current", help="current, last or an ISO week like 2026-W47")
    p.add_argument("--dim", choices=list(RANKED_DIMENSIONS), default="model", help="what is ranked")
    p.add_argument("--format", choices=list(FORMATS), default="csv", help="file format")
    p.add_argument("--output", "-o", help="file to write (default: standard output)")


def _watch(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from-beginning", action="store_true", help="replay the topics' history")
    p.add_argument("--limit", type=at_least(0), default=0, help="stop after N events (0 = never)")
    p.add_argument("--json", action="store_true", help="print each event as JSON")


def _dead_letters(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--since",
        help="only those dead-lettered since: a duration (90s, 15m, 2h, 7d) or a time "
        "(2026-11-18T14:00:00Z); default: the whole topic",
    )
    p.add_argument("--reason", help="only this reason code, e.g. too_old or bad_json")
    p.add_argument(
        "--limit", type=at_least(1), default=50, help="the newest N (default 50), newest last"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per line")


def _notify(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="targets file, TOML or JSON (default TOKENBOARD_NOTIFY_CONFIG)")
    p.add_argument("--check", action="store_true", help="check the file, list the targets, exit")
    p.add_argument(
        "--metrics-port", type=at_least(0), help="serve Prometheus /metrics on this port"
    )


COMMANDS: tuple[Command, ...] = (
    Command("stack", "local Kafka + Redis without Docker", "streams.cli.admin:run_stack", _stack),
    Command(
        "topics", "create the tokenboard topics (idempotent)", "streams.cli.admin:run_topics",
        _topics,
    ),
    Command(
        "env", "list every TOKENBOARD_* variable with its default", "streams.cli.admin:run_env",
        _no_arguments, connections=False,
    ),
    Command(
        "worker", "run a stream worker (Faust + pre-aggregator)", "streams.worker.app:run_worker",
        _worker,
    ),
    Command(
        "replay", "replay a scenario table through the pipeline", "streams.dev.replay:run_replay",
        _replay,
    ),
    Command("report", "the weekly report (text or JSON)", "streams.cli.views:run_report", _report),
    Command(
        "ingest", "HTTP ingest gateway (POST /v1/events)", "streams.http.ingest:run_ingest",
        _ingest,
    ),
    Command(
        "simulate", "produce realistic synthetic traffic", "streams.dev.simulate:run_simulate",
        _simulate,
    ),
    Command("api", "HTTP read API and dashboard", "streams.http.api:run_api", _api),
    Command("top", "leaderboard table of a week", "streams.cli.views:run_top", _top),
    Command(
        "export", "a week's whole leaderboard as CSV, JSON or Parquet",
        "streams.cli.export:run_export", _export,
    ),
    Command(
        "history", "weekly series of one model or country", "streams.cli.views:run_history",
        _history,
    ),
    Command(
        "watch", "follow ranking changes and alerts live", "streams.cli.views:run_watch", _watch
    ),
    Command(
        "dead-letters", "rejected events with reason, detail and source",
        "streams.cli.views:run_dead_letters", _dead_letters,
    ),
    Command(
        "notify", "deliver ranking changes and alerts to webhooks and Slack",
        "streams.notify.command:run_notify", _notify,
    ),
)  # fmt: skip
