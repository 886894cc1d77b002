"""close_loop ends a command's loop in bounded time, even when a task ignores cancellation."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

from streams.cli.shutdown import close_loop


def test_cancelled_tasks_finish_then_the_summary_runs_and_the_loop_closes() -> None:
    """Tasks that honour cancellation end; ``then`` runs; the loop is closed, no exit."""
    loop = asyncio.new_event_loop()
    task = loop.create_task(asyncio.sleep(3600))
    ran: list[str] = []
    close_loop(loop, 5.0, then=lambda: ran.append("summary"))
    assert task.cancelled()
    assert ran == ["summary"]
    assert loop.is_closed()


def test_a_task_that_ignores_cancellation_ends_the_process_with_the_exit_code() -> None:
    """A task still running after the timeout: ``then`` runs, output is flushed, the process
    exits with ``exit_code()`` instead of hanging."""
    script = textwrap.dedent(
        """
        import asyncio
        from streams.cli.shutdown import close_loop

        async def stubborn():
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    pass

        loop = asyncio.new_event_loop()
        loop.create_task(stubborn())
        loop.run_until_complete(asyncio.sleep(0.05))  # the task is running when cancelled
        close_loop(loop, 0.2, then=lambda: print("summary", end=""), exit_code=lambda: 3)
        print("not reached")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3
    assert done.stdout == "summary"
