"""``tokenboard stack``, ``topics`` and ``env``: the local stack and the topics, set up from a
terminal."""

from __future__ import annotations

import argparse
import asyncio
import sys

from streams.dev.stack import LocalStack, StackError
from streams.settings import Settings, env_documentation


def run_stack(args: argparse.Namespace, settings: Settings) -> int:
    """``stack up|down|status|logs|reset``: the local Kafka and Redis."""
    try:
        brokers = getattr(args, "brokers", None)
        stack = LocalStack(settings, brokers=None if brokers is None else int(brokers))
        if args.action == "up":
            for status in stack.up():
                print(status.line())
            print(f"\nexport TOKENBOARD_KAFKA_BOOTSTRAP={stack.bootstrap}")
            print(f"export TOKENBOARD_REDIS_URL=redis://127.0.0.1:{settings.redis_port}/0")
            if stack.nodes:
                # Topics made by `topics create`, workers and Faust take their copies from it.
                print(f"export TOKENBOARD_REPLICATION={stack.replication}")
        elif args.action == "down":
            stack.down()
            print("stack stopped")
        elif args.action == "status":
            statuses = stack.status()
            for status in statuses:
                print(status.line())
            return 0 if all(s.healthy for s in statuses) else 1
        elif args.action == "logs":
            missing = 0
            wanted = [args.service] if args.service else ["kafka", "redis"]
            for name, path in [pair for service in wanted for pair in stack.log_files(service)]:
                if not path.exists():
                    print(
                        f"error: no {name} log at {path}: is the stack's run folder "
                        f"{settings.run_path}? (TOKENBOARD_RUN_DIR or --run-dir)",
                        file=sys.stderr,
                    )
                    missing += 1
                    continue
                print(f"==> {path} <==")
                print(stack.tail_logs(name, args.lines))
            return 1 if missing else 0
        elif args.action == "reset":
            stack.reset()
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def run_topics(args: argparse.Namespace, settings: Settings) -> int:
    """``topics create``: every tokenboard topic, created where missing."""
    # Here, not at the top: aiokafka's admin client would slow every ``stack`` command.
    from streams.topics import ensure_topics, topic_specs

    created = asyncio.run(ensure_topics(settings, replication=args.replication))
    for spec in topic_specs(settings):
        mark = "created" if spec.name in created else "exists"
        print(f"{spec.name:<40} {spec.partitions:>3} partitions  {mark}")
    return 0


def run_env(args: argparse.Namespace, settings: Settings) -> int:
    """``env``: every TOKENBOARD_* variable with its default."""
    for name, default in env_documentation():
        print(f"{name}={default}")
    return 0
