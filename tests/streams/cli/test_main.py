"""The entry point: bad settings stop a command with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli.main import main


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        (
            "TOKENBOARD_PARTITIONS",
            "0",
            "TOKENBOARD_PARTITIONS=0 is out of range: must be at least 1",
        ),
        ("TOKENBOARD_BLOCK_SIZE", "-5", "TOKENBOARD_BLOCK_SIZE=-5 is out of range"),
        ("TOKENBOARD_API_PORT", "70000", "must be between 0 and 65535"),
        ("TOKENBOARD_TOP_N", "ten", "TOKENBOARD_TOP_N='ten' is not a valid int"),
        ("TOKENBOARD_INGEST_WORKERS", "0", "TOKENBOARD_INGEST_WORKERS=0 is out of range"),
        ("TOKENBOARD_INGEST_WORKERS", "65", "must be between 1 and 64"),
    ],
)
def test_an_out_of_range_setting_stops_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    words: str,
) -> None:
    """Exit 2 and a single stderr line naming the variable, before anything connects."""
    monkeypatch.setenv(variable, value)
    assert main(["top"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]


def test_a_bad_flag_value_stops_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """--partitions 0 on the command line is refused like the variable."""
    assert main(["top", "--partitions", "0"]) == 2
    assert "TOKENBOARD_PARTITIONS=0" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "words"), [("0", "0 is below the minimum 1"), ("65", "65 is above the maximum 64")]
)
@pytest.mark.parametrize("command", ["ingest", "api"])
def test_server_workers_outside_the_settings_bounds_stop_with_one_line(
    capsys: pytest.CaptureFixture[str], command: str, value: str, words: str
) -> None:
    """``tokenboard ingest|api --workers`` has the bounds of TOKENBOARD_INGEST_WORKERS and
    TOKENBOARD_API_WORKERS; argparse refuses a value outside them before anything binds or
    connects."""
    with pytest.raises(SystemExit) as stopped:
        main([command, "--workers", value])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"argument --workers: {words}")


def test_stack_logs_of_a_folder_without_a_stack_fails_and_names_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`stack logs` where no stack ever ran exits 1 and says which run folder it read."""
    assert main(["stack", "logs", "kafka", "--run-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no kafka log" in err and str(tmp_path) in err and "TOKENBOARD_RUN_DIR" in err
