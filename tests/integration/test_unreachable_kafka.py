"""Kafka unreachable: each command says so in one line and exits non-zero, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.dev.workerproc import reserve_ports

SEED = Path(__file__).resolve().parents[1] / "data" / "seed-2026-w47.json"


@pytest.mark.parametrize(
    "argv",
    [
        ["topics", "create"],
        ["watch"],
        ["worker"],
        ["replay", str(SEED), "--events", "1"],
        ["dead-letters"],
    ],
    ids=["topics", "watch", "worker", "replay", "dead-letters"],
)
def test_an_unreachable_kafka_is_one_line_and_exit_2(argv: list[str], tmp_path: Path) -> None:
    """`--kafka` at a port nobody listens on: exit 2, one stderr line naming the address."""
    port = reserve_ports(1)[0]
    env = {**os.environ, "TOKENBOARD_WORKER_WEB_PORT": "0", "TOKENBOARD_RUN_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "streams", *argv, "--kafka", f"127.0.0.1:{port}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert f"cannot connect to Kafka at 127.0.0.1:{port} (" in lines[0]
    assert "Connect call failed" in lines[0] and "tokenboard stack up" in lines[0]
