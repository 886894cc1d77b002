"""`tokenboard stack` runs a private Kafka + Redis: up, healthy with versions, down, reset."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli.main import main
from streams.dev.stack import LocalStack
from streams.settings import Settings
from tests.integration.processes import free_port


def _gone(pid: int) -> bool:
    """True when the process no longer exists (or only as a zombie awaiting its parent)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


@pytest.mark.slow
def test_stack_up_status_down_leaves_nothing_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """up reports both services healthy with versions; down stops exactly what up started."""
    monkeypatch.setenv("TOKENBOARD_KAFKA_PORT", str(free_port()))
    monkeypatch.setenv("TOKENBOARD_KAFKA_CONTROLLER_PORT", str(free_port()))
    monkeypatch.setenv("TOKENBOARD_REDIS_PORT", str(free_port()))
    run_dir = str(tmp_path / "run")
    stack = LocalStack(Settings.from_env().replace(run_dir=run_dir))
    try:
        assert main(["stack", "up", "--run-dir", run_dir]) == 0
        assert main(["stack", "up", "--run-dir", run_dir]) == 0  # idempotent
        capsys.readouterr()
        assert main(["stack", "status", "--run-dir", run_dir]) == 0
        status = capsys.readouterr().out
        assert "kafka  healthy" in status and "3.9." in status
        assert "redis  healthy" in status and "7." in status
        pids = [s.pid for s in stack.status()]
        assert all(pids)
    finally:
        assert main(["stack", "down", "--run-dir", run_dir]) == 0
    assert all(_gone(pid) for pid in pids if pid)
    assert main(["stack", "status", "--run-dir", run_dir]) == 1
    assert main(["stack", "reset", "--run-dir", run_dir]) == 0
    assert not (Path(run_dir) / "kafka").exists()
