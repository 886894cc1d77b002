"""cancel_and_wait ends tasks that lose a cancellation, within its deadline."""

from __future__ import annotations

import asyncio
import contextlib

from streams.tasks import cancel_and_wait


async def test_tasks_that_honour_cancellation_end_at_once() -> None:
    tasks = [asyncio.ensure_future(asyncio.sleep(3600)) for _ in range(3)]
    assert await cancel_and_wait(tasks, 5.0)
    assert all(task.cancelled() for task in tasks)


async def test_a_task_that_loses_its_first_cancellation_is_cancelled_again() -> None:
    """As a task in a Redis command on Python 3.11 may: the first CancelledError never
    reaches it (here: it is swallowed), the second does."""
    lost = 0

    async def loses_one() -> None:
        nonlocal lost
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if lost:
                    raise
                lost += 1

    task = asyncio.ensure_future(loses_one())
    await asyncio.sleep(0)
    assert await cancel_and_wait([task], 5.0)
    assert task.cancelled() and lost == 1


async def test_a_task_that_never_ends_is_reported_after_the_deadline() -> None:
    stop = asyncio.Event()

    async def stubborn() -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    task = asyncio.ensure_future(stubborn())
    await asyncio.sleep(0)
    assert not await cancel_and_wait([task], 0.3)
    assert not task.done()
    stop.set()
    task.cancel()
    await asyncio.wait([task], timeout=1)
    assert task.done()


async def test_finished_tasks_and_their_errors_are_left_alone() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    task = asyncio.ensure_future(fails())
    await asyncio.wait([task])
    assert await cancel_and_wait([task], 1.0)
    assert isinstance(task.exception(), ValueError)
