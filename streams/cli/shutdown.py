"""Ending a long-running command's event loop in bounded time.

``asyncio.run`` waits without limit for every task it cancels; a command interrupted with
Ctrl-C must exit even if one client's clean-up hangs (``tokenboard watch`` was once still
running 30 s after SIGINT).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable

from streams.tasks import cancel_and_wait

__all__ = ["close_loop"]


def close_loop(
    loop: asyncio.AbstractEventLoop,
    timeout_s: float,
    *,
    then: Callable[[], None] = lambda: None,
    exit_code: Callable[[], int] = lambda: 0,
) -> None:
    """Cancel every task still on ``loop`` (again if one runs on: :mod:`streams.tasks`), give
    them ``timeout_s`` seconds, run ``then`` (a summary, say) and close the loop; if some task
    still runs, flush the output and end the process with ``exit_code()`` instead."""
    leftover = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if leftover:
        loop.run_until_complete(cancel_and_wait(leftover, timeout_s))
    then()
    if any(not task.done() for task in leftover):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_code())
    loop.close()
