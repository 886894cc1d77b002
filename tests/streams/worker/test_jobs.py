"""The last-resort guard of the worker's periodic jobs."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import REGISTRY

from streams.worker.jobs import run_guarded


def errors_of(job: str) -> float:
    """The current value of ``tokenboard_job_errors_total{job=...}`` (0 before any)."""
    value = REGISTRY.get_sample_value("tokenboard_job_errors_total", {"job": job})
    return value or 0.0


async def test_an_exception_is_logged_counted_and_swallowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A job's Exception does not propagate; it is counted and logged naming the job."""
    before = errors_of("test-failing")

    async def failing() -> None:
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="tokenboard.worker"):
        await run_guarded("test-failing", failing)
    assert errors_of("test-failing") == before + 1
    [record] = [r for r in caplog.records if r.name == "tokenboard.worker"]
    assert "test-failing" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)


async def test_a_job_that_succeeds_counts_nothing() -> None:
    """A job that returns normally runs once and leaves the error counter alone."""
    before = errors_of("test-ok")
    runs: list[int] = []

    async def ok() -> None:
        runs.append(1)

    await run_guarded("test-ok", ok)
    assert runs == [1]
    assert errors_of("test-ok") == before


async def test_cancellation_still_propagates() -> None:
    """CancelledError (how Faust stops a timer) passes through the guard and is not counted."""
    before = errors_of("test-cancelled")

    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await run_guarded("test-cancelled", cancelled)
    assert errors_of("test-cancelled") == before


async def test_each_job_is_counted_under_its_own_label() -> None:
    """Errors are counted per job label, so one job's failures do not show under another."""
    before_a, before_b = errors_of("test-a"), errors_of("test-b")

    async def failing() -> None:
        raise RuntimeError("unexpected")

    await run_guarded("test-a", failing)
    await run_guarded("test-a", failing)
    await run_guarded("test-b", failing)
    assert errors_of("test-a") == before_a + 2
    assert errors_of("test-b") == before_b + 1
