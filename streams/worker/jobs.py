"""The last-resort guard of a worker's periodic jobs (snapshot timer, rank tick).

An exception escaping a Faust timer crashes the whole worker (mode's ``Service.crash``): one
unexpected error in a snapshot or a ranker tick would stop stage 1 and stage 2 with it. The
jobs handle the failures they expect (Redis or Kafka unavailable) themselves; anything else
is logged, counted, and the job runs again at its next tick.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from streams.metrics import JOB_ERRORS

log = logging.getLogger("tokenboard.worker")


async def run_guarded(job: str, run: Callable[[], Awaitable[None]]) -> None:
    """Await ``run()``; an ``Exception`` it raises is logged and counted in
    ``tokenboard_job_errors_total{job=...}`` instead of propagating.

    ``asyncio.CancelledError`` (a ``BaseException``) still propagates: it is how Faust stops
    the job at shutdown.
    """
    try:
        await run()
    except Exception:
        JOB_ERRORS.labels(job=job).inc()
        log.exception("%s job failed unexpectedly; the worker goes on, next run retries", job)
