"""The ``tokenboard`` entry point: the parser built from the command table, and dispatch.

Heavy modules (Faust, aiohttp) are imported only by the handler of the command that runs,
so that ``tokenboard stack status`` stays fast.
"""

from __future__ import annotations

import argparse
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tokenboard`` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.command_entry.resolve()(args, settings))
    except KeyboardInterrupt:
        return 130
