"""Stopping asyncio tasks in bounded time, even when a cancellation is lost.

On Python 3.11 ``asyncio.wait_for`` drops a cancellation that arrives as its inner awaitable
finishes: it returns the result instead (CPython gh-86296, fixed in 3.12). redis-py wraps
every command's send in ``wait_for`` when ``socket_timeout`` is set, which it is by default
since 8.0 (5 s), so a task cancelled while it sends a Redis command may simply run on: a
task polling the test Redis kept running after 93 of 200 cancels here. ``await task`` after
one ``cancel()`` can then wait forever (a cluster test hung until pytest's 300 s limit on
exactly that). A task is therefore cancelled again until it has ended, within a deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = ["cancel_and_wait"]

#: How long one cancellation is given before the next: a lost one is then retried quickly.
RECANCEL_S = 0.1


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]], timeout_s: float) -> bool:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again those that run
    on; True when all ended within ``timeout_s``, False (some still running) otherwise.

    Never raises the tasks' own exceptions or cancellations: read them from the tasks.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    pending = {task for task in tasks if not task.done()}
    while pending:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_S, remaining))
    return True
