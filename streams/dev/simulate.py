"""``tokenboard simulate``: produce realistic synthetic usage traffic at a steady rate.

The events come from :class:`aggregations.traffic.TrafficModel` (skewed popularity over the
catalog's models, a daily cycle of token volume, weekly trends). The event *rate* stays at
``--rate`` so benchmarks and the demo get the load they asked for.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import sys
import time
import uuid

from aiokafka.errors import KafkaError

from aggregations.report import format_tokens
from aggregations.traffic import TrafficModel
from streams.sdk.producer import UsageProducer
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker.catalog import load_catalog

__all__ = ["run_simulate", "simulate"]

#: Seconds between two batches: small enough for a smooth rate, large enough to batch sends.
TICK_S = 0.02
#: Events per batch at most: a batch takes ~0.2 s to build and send, which bounds how far a
#: run overshoots its duration or a stop request.
MAX_BATCH = 5000
#: Seconds between two progress redraws.
PROGRESS_EVERY_S = 0.5
# A tick never sends more than this many seconds of traffic at once: when the producer falls
# further behind, the backlog is dropped, so the rate shown falls instead of the simulator
# bursting later to catch up.
MAX_CATCH_UP_S = 0.25


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _progress(sent: int, tokens: int, elapsed: float, duration: float) -> None:
    rate = sent / elapsed if elapsed > 0 else 0.0
    limit = f" / {_clock(duration)}" if duration > 0 else ""
    sys.stderr.write(
        f"\rsimulate  {sent:>12,} events  {rate:>9,.0f}/s  {_clock(elapsed)}{limit}"
        f"  {format_tokens(tokens):>8} tokens "
    )
    sys.stderr.flush()


async def simulate(
    settings: Settings,
    rate: float,
    duration: float,
    models: int = 0,
    seed: int = 1,
    show: bool = True,
    *,
    stop: asyncio.Event | None = None,
) -> int:
    """Produce traffic at ``rate`` events/s for ``duration`` s; returns the events acknowledged.

    ``duration`` 0 runs until ``stop`` is set (the CLI sets it on Ctrl-C). ``models`` limits the
    traffic to that many catalog models picked by ``seed`` (0: all). ``show`` draws a progress
    line on stderr. Event ids are unique per call, so runs never deduplicate each other.
    """
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    if duration <= 0 and stop is None:
        raise ValueError("duration 0 (run until stopped) needs a stop event")
    catalog = list(load_catalog(settings.catalog_path))
    if 0 < models < len(catalog):
        catalog = random.Random(seed).sample(catalog, models)
    traffic = TrafficModel(catalog, seed, id_prefix=f"sim-{uuid.uuid4().hex[:12]}")
    await ensure_topics(settings)

    sent = tokens = skipped = 0
    catch_up = min(int(rate * MAX_CATCH_UP_S) + 1, MAX_BATCH)
    started = time.monotonic()
    drawn_at = started
    async with UsageProducer(settings) as producer:
        while True:
            now = time.monotonic()
            elapsed = now - started
            finished = (duration > 0 and elapsed >= duration) or (
                stop is not None and stop.is_set()
            )
            scheduled = int(rate * (min(elapsed, duration) if duration > 0 else elapsed))
            due = scheduled - skipped - sent
            if due > catch_up:
                skipped += due - catch_up
                due = catch_up
            if due > 0:
                events = traffic.next_events(due, time.time_ns() // 1_000_000)
                futures = [await producer.send(e) for e in events]
                # Waiting for this batch's acks keeps the count honest (acknowledged events)
                # and memory bounded; the next tick sends a larger batch if this one was slow.
                await asyncio.gather(*futures)
                sent += len(events)
                tokens += sum(e.tokens for e in events)
            if finished:
                break
            now = time.monotonic()
            if show and now - drawn_at >= PROGRESS_EVERY_S:
                _progress(sent, tokens, now - started, duration)
                drawn_at = now
            next_tick = started + (int((now - started) / TICK_S) + 1) * TICK_S
            if duration > 0:
                next_tick = min(next_tick, started + duration)
            await _pause(stop, next_tick - now)
    if show:
        _progress(sent, tokens, time.monotonic() - started, duration)
        sys.stderr.write("\n")
    return sent


async def _pause(stop: asyncio.Event | None, seconds: float) -> None:
    if seconds <= 0:
        return
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def run_simulate(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler: simulate until ``--duration`` elapses or Ctrl-C, then print a summary."""

    async def go() -> tuple[int, float]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Ctrl-C ends the run cleanly: queued events are flushed and the summary printed.
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        started = time.monotonic()
        sent = await simulate(
            settings, args.rate, args.duration, args.models, args.seed, show=True, stop=stop
        )
        return sent, time.monotonic() - started

    try:
        sent, seconds = asyncio.run(go())
    except (KafkaError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"sent {sent:,} events in {seconds:.1f} s ({sent / max(seconds, 1e-9):,.0f}/s)")
    return 0
