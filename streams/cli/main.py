"""The ``tokenboard`` command: one entry point for the stack, the pipeline and the read side.

Heavy modules (Faust, aiohttp) are imported inside the command that needs them so that
``tokenboard stack status`` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence

from streams.settings import Settings, env_documentation

Handler = Callable[[argparse.Namespace, Settings], int]


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connections (override TOKENBOARD_* variables)")
    group.add_argument("--kafka", dest="kafka_bootstrap", help="Kafka bootstrap servers")
    group.add_argument("--redis", dest="redis_url", help="Redis URL")
    group.add_argument("--topic-prefix", dest="topic_prefix", help="prefix of every topic")
    group.add_argument("--redis-prefix", dest="redis_prefix", help="prefix of every Redis key")
    group.add_argument("--partitions", type=int, help="partitions of the tokenboard topics")
    group.add_argument("--run-dir", dest="run_dir", help="local stack run folder")


def _settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        name: getattr(args, name, None)
        for name in (
            "kafka_bootstrap",
            "redis_url",
            "topic_prefix",
            "redis_prefix",
            "partitions",
            "run_dir",
            "top_n",
        )
    }
    return Settings.from_env().replace(**overrides)


# stack --------------------------------------------------------------------------------------
def _cmd_stack(args: argparse.Namespace, settings: Settings) -> int:
    from streams.dev.stack import LocalStack, StackError

    stack = LocalStack(settings)
    try:
        if args.action == "up":
            for status in stack.up():
                print(status.line())
            print(f"\nexport TOKENBOARD_KAFKA_BOOTSTRAP=127.0.0.1:{settings.kafka_port}")
            print(f"export TOKENBOARD_REDIS_URL=redis://127.0.0.1:{settings.redis_port}/0")
        elif args.action == "down":
            stack.down()
            print("stack stopped")
        elif args.action == "status":
            statuses = stack.status()
            for status in statuses:
                print(status.line())
            return 0 if all(s.healthy for s in statuses) else 1
        elif args.action == "logs":
            for name in [args.service] if args.service else ["kafka", "redis"]:
                print(f"==> {stack.log_file(name)} <==")
                print(stack.tail_logs(name, args.lines))
        elif args.action == "reset":
            stack.reset()
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from streams.topics import ensure_topics, topic_specs

    created = asyncio.run(ensure_topics(settings, replication=args.replication))
    for spec in topic_specs(settings):
        mark = "created" if spec.name in created else "exists"
        print(f"{spec.name:<40} {spec.partitions:>3} partitions  {mark}")
    return 0


def _cmd_env(args: argparse.Namespace, settings: Settings) -> int:
    for name, default in env_documentation():
        print(f"{name}={default}")
    return 0


# registry -----------------------------------------------------------------------------------
def _lazy(module: str, function: str) -> Handler:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        import importlib

        handler: Handler = getattr(importlib.import_module(module), function)
        return handler(args, settings)

    return run


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    parser = argparse.ArgumentParser(
        prog="tokenboard",
        description="Real-time weekly leaderboard of LLM token usage (Kafka + Faust + Redis).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    stack = sub.add_parser("stack", help="local Kafka + Redis without Docker")
    stack.add_argument("action", choices=["up", "down", "status", "logs", "reset"])
    stack.add_argument("service", nargs="?", choices=["kafka", "redis"], help="for logs")
    stack.add_argument("-n", "--lines", type=int, default=40, help="log lines to show")
    _connection_flags(stack)
    stack.set_defaults(handler=_cmd_stack)

    topics = sub.add_parser("topics", help="create the tokenboard topics (idempotent)")
    topics.add_argument("action", choices=["create"])
    topics.add_argument("--replication", type=int, help="default TOKENBOARD_REPLICATION")
    _connection_flags(topics)
    topics.set_defaults(handler=_cmd_topics)

    env = sub.add_parser("env", help="list every TOKENBOARD_* variable with its default")
    env.set_defaults(handler=_cmd_env)

    for name, module, function, helptext in _PIPELINE_COMMANDS:
        cmd = sub.add_parser(name, help=helptext)
        _connection_flags(cmd)
        _COMMAND_ARGUMENTS.get(name, lambda p: None)(cmd)
        cmd.set_defaults(handler=_lazy(module, function))
    return parser


_PIPELINE_COMMANDS: list[tuple[str, str, str, str]] = []
_COMMAND_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {}


def register(
    name: str, module: str, function: str, helptext: str
) -> Callable[
    [Callable[[argparse.ArgumentParser], None]], Callable[[argparse.ArgumentParser], None]
]:
    """Register a pipeline command whose handler lives in ``module.function``."""

    def decorate(
        arguments: Callable[[argparse.ArgumentParser], None],
    ) -> Callable[[argparse.ArgumentParser], None]:
        _PIPELINE_COMMANDS.append((name, module, function, helptext))
        _COMMAND_ARGUMENTS[name] = arguments
        return arguments

    return decorate


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tokenboard`` console script."""
    from streams.cli import commands  # noqa: F401  - registers the pipeline commands

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = _settings_from(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        return int(args.handler(args, settings))
    except KeyboardInterrupt:
        return 130
