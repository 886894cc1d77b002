"""The ``tokenboard`` entry point: the parser built from the command table, and dispatch.

Heavy modules (Faust, aiohttp) are imported only by the handler of the command that runs,
so that ``tokenboard stack status`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from aggregations.errors import InvalidInput
from streams.cli.commands import COMMANDS, CONNECTION_FIELDS, connection_flags
from streams.settings import Settings

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree, from :data:`streams.cli.commands.COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="tokenboard",
        description="Real-time weekly leaderboard of LLM token usage (Kafka + Faust + Redis).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        cmd = sub.add_parser(command.name, help=command.help)
        if command.connections:
            connection_flags(cmd)
        command.arguments(cmd)
        cmd.set_defaults(command_entry=command)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """TOKENBOARD_* settings with the command line's connection flags applied."""
    overrides = {name: getattr(args, name, None) for name in CONNECTION_FIELDS}
    return Settings.from_env().replace(**overrides)


class _KafkaConnectFailures(logging.Filter):
    """Keeps aiokafka's reason for a failed connection, and drops its record while no logging
    is configured.

    The record would reach Python's last-resort handler as a stray line next to the one
    error :func:`main` prints, which carries the reason instead (connection refused, a wrong
    password). A process that configured logging (a worker once Faust runs, the servers)
    keeps the records.
    """

    def __init__(self) -> None:
        super().__init__()
        self.last_reason: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Unable connect to") or not record.args:
            return True
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        self.last_reason = str(args[-1])
        configured = logging.getLogger().handlers or logging.getLogger("aiokafka").handlers
        return bool(configured)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tokenboard`` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failures = _KafkaConnectFailures()
    # aiokafka's client logs its connection failures on the package's own logger.
    kafka_log = logging.getLogger("aiokafka")
    kafka_log.addFilter(failures)
    try:
        return int(args.command_entry.resolve()(args, settings))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        line = unreachable_kafka(exc, settings, failures.last_reason)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2
    finally:
        # main() runs many times in one test process: one filter per call would pile up.
        kafka_log.removeFilter(failures)


def unreachable_kafka(
    exc: BaseException, settings: Settings, reason: str | None = None
) -> str | None:
    """One line for a Kafka that cannot be reached, with aiokafka's ``reason`` when it gave
    one (None for any other error)."""
    # Imported here: aiokafka is heavy, and only a failing command needs it.
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

    if not isinstance(exc, KafkaConnectionError | KafkaTimeoutError):
        return None
    why = reason or type(exc).__name__
    if "Authentication" in why or "SASL" in why:
        hint = "check TOKENBOARD_KAFKA_SASL_USERNAME and TOKENBOARD_KAFKA_SASL_PASSWORD"
    else:
        hint = (
            "is it running (`tokenboard stack up`)? "
            "TOKENBOARD_KAFKA_BOOTSTRAP or --kafka says where"
        )
    return f"error: cannot connect to Kafka at {settings.kafka_bootstrap} ({why}); {hint}"
