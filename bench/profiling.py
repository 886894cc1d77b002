"""py-spy sampling of a running worker and a summary of where its CPU went."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench.figures import HotSpot, Profile

RATE_HZ = 100
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy_binary() -> str | None:
    """The py-spy executable next to this interpreter, or on PATH."""
    local = Path(sys.executable).with_name("py-spy")
    if local.exists():
        return str(local)
    return shutil.which("py-spy")


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
    return path


class PySpy:
    """``py-spy record --format raw`` attached to ``pid`` until :meth:`stop`."""

    def __init__(self, pid: int, output: Path) -> None:
        self.pid = pid
        self.output = output
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.error = ""

    @property
    def running(self) -> bool:
        """True while py-spy samples."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> PySpy:
        """Attach (non-blocking sampling, so the worker is not paused)."""
        binary = py_spy_binary()
        if binary is None:
            self.error = "py-spy is not installed"
            return self
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                binary,
                "record",
                "--pid",
                str(self.pid),
                "--rate",
                str(RATE_HZ),
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(self.output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.started = time.monotonic()
        return self

    def stop(self) -> Profile:
        """Stop sampling (SIGINT makes py-spy write its file) and summarise."""
        seconds = time.monotonic() - self.started
        if self.proc is None:
            return Profile(samples=0, seconds=0, rate=RATE_HZ, error=self.error)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        if not self.output.exists():
            message = (err or b"").decode(errors="replace").strip().splitlines()
            return Profile(
                samples=0,
                seconds=seconds,
                rate=RATE_HZ,
                error="py-spy wrote nothing: " + (message[0] if message else "no output"),
            )
        profile = summarise(self.output.read_text(), seconds)
        profile.raw_path = str(self.output)
        return profile


def summarise(raw: str, seconds: float, top: int = 20) -> Profile:
    """Self and inclusive shares of functions in py-spy's collapsed-stack output."""
    self_counts: Counter[tuple[str, str]] = Counter()
    total_counts: Counter[tuple[str, str]] = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames: list[tuple[str, str]] = []
        for text in stack.split(";"):
            match = _FRAME.match(text)
            if match is None:
                frames.append((text, ""))
            else:
                frames.append((match["func"], _short(match["file"])))
        if frames:
            self_counts[frames[-1]] += count
        for frame in set(frames):
            total_counts[frame] += count
    if not samples:
        return Profile(samples=0, seconds=seconds, rate=RATE_HZ, error="no samples")

    def spots(ranked: list[tuple[str, str]]) -> list[HotSpot]:
        return [
            HotSpot(
                function=func,
                location=where,
                self_pct=100 * self_counts[(func, where)] / samples,
                total_pct=100 * total_counts[(func, where)] / samples,
            )
            for func, where in ranked[:top]
        ]

    # Inclusive ranking without the frames every stack has (event loop, runpy, Faust's
    # task wrappers): those above 60 % say nothing about where the work is.
    inclusive = [
        frame
        for frame, count in total_counts.most_common()
        if count < 0.6 * samples and not frame[1].startswith(("asyncio/", "mode/"))
    ]
    return Profile(
        samples=samples,
        seconds=seconds,
        rate=RATE_HZ,
        by_self=spots([frame for frame, _ in self_counts.most_common()]),
        by_total=spots(inclusive),
    )
