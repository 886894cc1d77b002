"""Where the processes of one integration test log, and what a failing test prints of them.

Every process a test starts (workers, brokers, redis-servers) writes its log under the
test's own tmp folder and is registered here; when the test fails, the report shows the
tail of each log, so a failure in CI explains itself without a rerun.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

#: Where logs go outside a test (a script importing the helpers).
DEFAULT_FOLDER = Path("test-output")
TAIL_LINES = 60
#: The shared stack serves every test: its latest lines only.
SHARED_TAIL_LINES = 15

_folder: Path | None = None
_watched: dict[Path, str] = {}
_shared: dict[Path, str] = {}


def begin(folder: Path) -> None:
    """Start a test: its processes log under ``folder``."""
    global _folder
    folder.mkdir(parents=True, exist_ok=True)
    _folder = folder
    _watched.clear()


def end() -> None:
    """End a test: forget its logs."""
    global _folder
    _folder = None
    _watched.clear()


def log_folder() -> Path:
    """The folder the current test's processes log to."""
    folder = _folder or DEFAULT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def watch(path: Path, title: str) -> None:
    """Show the tail of ``path`` under ``title`` if the current test fails."""
    _watched[path] = title


def watch_shared(path: Path, title: str) -> None:
    """Show the tail of ``path`` whenever a test of this session fails (the shared stack)."""
    _shared[path] = title


def tails(lines: int = TAIL_LINES) -> list[tuple[str, str]]:
    """(title, last lines) of every watched log that exists."""
    logs = [(p, t, lines) for p, t in _watched.items()]
    logs += [(p, t, min(lines, SHARED_TAIL_LINES)) for p, t in _shared.items()]
    out: list[tuple[str, str]] = []
    for path, title, count in logs:
        try:
            with path.open("r", errors="replace") as log:
                last = "".join(deque(log, maxlen=count))
        except OSError:
            continue
        out.append((f"{title}: last {count} lines of {path}", last))
    return out
