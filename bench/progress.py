"""One-line progress output on stderr for the long phases of the benchmark."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Rewrites one stderr line at most every ``every_s`` seconds; ``done`` ends it."""

    def __init__(
        self, label: str, total: int, every_s: float = 1.0, stream: TextIO | None = None
    ) -> None:
        self.stream = stream
        self.label = label
        self.total = total
        self.every_s = every_s
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, done: int, extra: str = "", *, force: bool = False) -> None:
        """Show ``done`` of ``total`` with the rate since the start."""
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        elapsed = max(now - self.started, 1e-9)
        pct = 100 * done / self.total if self.total else 100.0
        line = (
            f"\r  {self.label}: {done:,}/{self.total:,} ({pct:5.1f} %) "
            f"{done / elapsed:,.0f}/s {elapsed:6.1f} s {extra}"
        )
        out = self.stream or sys.stderr
        out.write(line.ljust(100))
        out.flush()

    def done(self, done: int, extra: str = "") -> None:
        """Final update and a newline."""
        self.update(done, extra, force=True)
        out = self.stream or sys.stderr
        out.write("\n")
        out.flush()


def say(message: str) -> None:
    """A progress message on its own line."""
    sys.stderr.write(f"{message}\n")
    sys.stderr.flush()
