"""The command table: every handler resolves and reads only the flags its parser declares."""

from __future__ import annotations

import argparse
import inspect
import re

import pytest

from streams.cli.commands import COMMANDS, CONNECTION_FIELDS, Command
from streams.cli.main import build_parser, settings_from

ARGS_READ = re.compile(r"\bargs\.(\w+)|getattr\(args, \"(\w+)\"")


def declared(command: Command) -> set[str]:
    """The destinations of every flag and positional argument of one subcommand."""
    parser = argparse.ArgumentParser()
    command.arguments(parser)
    return {action.dest for action in parser._actions}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_every_handler_resolves_to_a_function(command: Command) -> None:
    """Each handler named in the table is importable and callable."""
    assert callable(command.resolve())


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_handlers_read_only_declared_flags(command: Command) -> None:
    """A handler never reads a flag its parser does not declare (watch once read --json
    through getattr while no parser had it)."""
    source = inspect.getsource(inspect.getmodule(command.resolve()))  # type: ignore[arg-type]
    handler_source = inspect.getsource(command.resolve())
    read = {a or b for a, b in ARGS_READ.findall(handler_source)}
    allowed = declared(command) | set(CONNECTION_FIELDS) | {"help"}
    assert read <= allowed, f"{command.name} reads undeclared {read - allowed}"
    assert source  # the module's source is readable, so the scan above saw the handler


def test_the_parser_has_exactly_the_table_commands() -> None:
    """tokenboard's subcommands are the table's, in order, with no duplicate."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    names = [c.name for c in COMMANDS]
    assert list(sub.choices) == names and len(set(names)) == len(names)


def test_connection_flags_override_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """--kafka and --partitions replace the TOKENBOARD_* values for that run."""
    monkeypatch.setenv("TOKENBOARD_KAFKA_BOOTSTRAP", "10.0.0.1:9092")
    args = build_parser().parse_args(["top", "--kafka", "127.0.0.1:1", "--partitions", "3"])
    settings = settings_from(args)
    assert (settings.kafka_bootstrap, settings.partitions) == ("127.0.0.1:1", 3)


def test_the_env_command_takes_no_connection_flags() -> None:
    """`tokenboard env` refuses --kafka: it only prints the variables."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["env", "--kafka", "x:1"])


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["simulate", "--duration", "-1"], "--duration: -1 is below the minimum 0"),
        (["simulate", "--models", "-3"], "--models: -3 is below the minimum 0"),
        (["replay", "x.json", "--events", "0"], "--events: 0 is below the minimum 1"),
        (["top", "-n", "x"], "'x' is not an integer"),
    ],
)
def test_out_of_range_flags_are_refused_by_the_parser(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A negative duration (which ran forever) or model count is a usage error naming it."""
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2 and words in capsys.readouterr().err


def test_top_ranks_apps_under_by_or_dim() -> None:
    """``top --dim app`` is ``top --by app``; every ranked dimension is a choice."""
    parser = build_parser()
    assert parser.parse_args(["top", "--dim", "app"]).by == "app"
    assert parser.parse_args(["top", "--by", "app"]).by == "app"
    assert parser.parse_args(["top"]).by == "model"


def test_export_flags() -> None:
    """``export --week W --dim D --format F --output FILE``; csv of the current week's models
    by default; an unknown format is refused by the parser."""
    args = build_parser().parse_args(
        ["export", "--week", "2026-W47", "--dim", "app", "--format", "parquet", "-o", "x.pq"]
    )
    assert (args.week, args.dim, args.format, args.output) == ("2026-W47", "app", "parquet", "x.pq")
    default = build_parser().parse_args(["export"])
    assert (default.week, default.dim, default.format, default.output) == (
        "current", "model", "csv", None,
    )  # fmt: skip
    with pytest.raises(SystemExit):
        build_parser().parse_args(["export", "--format", "xlsx"])
