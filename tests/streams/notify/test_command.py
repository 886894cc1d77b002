"""``tokenboard notify`` at the command line, before it connects to anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli.main import main

CONFIG = """
[[targets]]
name = "ops"
kind = "slack"
url = "https://hooks.slack.com/services/T0/B0/SECRET"
filters = { kinds = ["surge", "new_leader"], min_severity = "notice" }
"""


def test_check_lists_the_targets_without_their_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--check reads the file, prints one line per target (host only) and exits 0."""
    path = tmp_path / "notify.toml"
    path.write_text(CONFIG)
    assert main(["notify", "--config", str(path), "--check"]) == 0
    out = capsys.readouterr().out
    assert out == (
        "ops (slack to hooks.slack.com): kinds=new_leader,surge min_severity=notice;"
        " 5 attempts, start latest\n"
    )


def test_the_setting_names_the_file_when_there_is_no_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """TOKENBOARD_NOTIFY_CONFIG is read when --config is absent."""
    path = tmp_path / "notify.toml"
    path.write_text(CONFIG)
    monkeypatch.setenv("TOKENBOARD_NOTIFY_CONFIG", str(path))
    assert main(["notify", "--check"]) == 0
    assert capsys.readouterr().out.startswith("ops (slack")


def test_without_a_config_or_with_a_bad_one_it_stops_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No file named, or a file with a typo, is exit 2 and one error line."""
    monkeypatch.delenv("TOKENBOARD_NOTIFY_CONFIG", raising=False)
    assert main(["notify"]) == 2
    assert "pass --config FILE or set TOKENBOARD_NOTIFY_CONFIG" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text(CONFIG.replace("min_severity", "severity"))
    assert main(["notify", "--config", str(bad), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "unknown key 'severity'" in err and err.count("\n") == 1
