"""Soak run: a steady load for ``--minutes`` (30) with a worker SIGKILLed every
``--kill-every`` seconds (180); exact at the end, worker RSS slope reported.

On a fresh topic prefix, app id and Redis prefix, two workers (``WorkerProcess``) share the
work. Usage events of the current week (a few models and apps, unique event ids, event time
= send time) go through :meth:`UsageProducer.send_many` in small batches paced by the clock
at ``--rate`` events/s (300); a batch counts as sent once Kafka acknowledged it (a failed
batch is sent again with the same ids, which the pipeline counts once). Every
``--kill-every`` seconds one worker, the two in turn, is SIGKILLed and a replacement
started at once. Each worker's RSS is read from ``/proc`` every 5 s.

At the end the load stops and Redis must show exactly the totals of every acknowledged
event (tokens and calls of each week total and each model, tokens of each app) within
``--deadline`` seconds (180). The run reports events sent, counted, lost and counted twice,
the kills, the longest pause of the week total while the load ran, and the RSS slope
(MiB per 10 min, least squares over the samples after the first ``--rss-warmup`` seconds,
120, of each worker's life): per worker generation and pooled over all of them. A Markdown
section with the exact command is appended to ``--out`` (``bench/SOAK.md``). The topics and
keys are deleted at the end, unless the run was not exact: then they are kept for analysis
(``--cleanup RUN_ID`` deletes them later), and so are the worker logs (``--log-dir``).

Exit status 1 when Redis is not exact or a worker exited on its own. Not part of
``make test``. Run against the ``TOKENBOARD_*`` stack::

    python -m bench.soak                             # 30 min, 300 events/s, kill every 180 s
    python -m bench.soak --minutes 4 --kill-every 60 # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import shlex
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from aiokafka.errors import KafkaError

from aggregations.events import UsageEvent
from aggregations.totals import NO_APP
from aggregations.weeks import week_id
from bench.procstats import cpu_seconds, machine, rss_mib
from bench.progress import say
from bench.redis_check import delete_prefix
from bench.versions import code_fingerprint
from streams.dev.workerproc import WorkerProcess
from streams.sdk.producer import UsageProducer
from streams.settings import Settings
from streams.store.keys import RedisKeys
from streams.topics import delete_topics_with_prefix, ensure_topics

REPO = Path(__file__).resolve().parents[1]
MODELS = (
    "deepseek/deepseek-v4-flash",
    "openai/gpt-5.1",
    "qwen/qwen3-max",
    "anthropic/claude-sonnet-4.5",
    "google/gemini-3-pro",
)
#: Apps of the events in turn; None: an event without an app (counted under NO_APP).
APPS = ("support-bot", None, "coder", "search:beta")
TICK_S = 0.1
RSS_EVERY_S = 5.0
PROGRESS_EVERY_S = 30.0
TOTAL_POLL_S = 0.25
READY_TIMEOUT_S = 180.0
#: A batch not acknowledged within this is sent again (same ids).
SEND_TIMEOUT_S = 60.0
#: Give up after this long without an acknowledgement of one batch.
SEND_GIVE_UP_S = 300.0
SLOTS = ("a", "b")
#: Fewest samples a slope is fitted to.
MIN_POINTS = 3
#: Once exact, Redis must still be exact this much later.
STILL_EXACT_S = 10.0


# Pure parts ------------------------------------------------------------------------------
def soak_event(run_id: str, n: int, ts_ms: int) -> UsageEvent:
    """Event number ``n`` of a run: models and apps in turn, token counts varying with ``n``."""
    return UsageEvent(
        event_id=f"{run_id}-{n}",
        ts_ms=ts_ms,
        model=MODELS[n % len(MODELS)],
        prompt_tokens=200 + (n * 7919) % 1801,
        completion_tokens=20 + (n * 104_729) % 401,
        app=APPS[n % len(APPS)],
    )


@dataclass
class Totals:
    """What Redis must show for the acknowledged events (each event id counted once)."""

    events: int = 0
    week_tokens: dict[str, int] = field(default_factory=dict)
    week_calls: dict[str, int] = field(default_factory=dict)
    #: (week, model) -> [tokens, calls]
    models: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    #: (week, app) -> tokens; events without an app under NO_APP
    apps: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, events: Iterable[UsageEvent]) -> None:
        """Count acknowledged events (the caller adds each event id once: the run's ids are
        unique, and a batch sent again is added once, when it is acknowledged)."""
        for event in events:
            week = week_id(event.ts_ms)
            self.events += 1
            self.week_tokens[week] = self.week_tokens.get(week, 0) + event.tokens
            self.week_calls[week] = self.week_calls.get(week, 0) + event.calls
            cell = self.models.setdefault((week, event.model), [0, 0])
            cell[0] += event.tokens
            cell[1] += event.calls
            app = (week, event.app or NO_APP)
            self.apps[app] = self.apps.get(app, 0) + event.tokens


@dataclass
class Observed:
    """What Redis shows for the keys of a :class:`Totals` (None: key or field missing)."""

    week_tokens: dict[str, int | None] = field(default_factory=dict)
    week_calls: dict[str, int | None] = field(default_factory=dict)
    #: (week, model) -> (tokens of the member hash, calls of it, score on the board)
    models: dict[tuple[str, str], tuple[int | None, int | None, int | None]] = field(
        default_factory=dict
    )
    apps: dict[tuple[str, str], int | None] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        """Calls of every week total (events counted, each event being one call)."""
        return sum(v or 0 for v in self.week_calls.values())


def mismatches(expected: Totals, observed: Observed) -> list[str]:
    """Every week total, model and app that Redis does not show exactly (empty: exact)."""
    wrong: list[str] = []
    for week in sorted(expected.week_tokens):
        want = (expected.week_tokens[week], expected.week_calls[week])
        got = (observed.week_tokens.get(week), observed.week_calls.get(week))
        if got != want:
            wrong.append(f"total {week}: tokens, calls {got[0]}, {got[1]} != {want[0]}, {want[1]}")
    for cell in sorted(expected.models):
        tokens, calls = expected.models[cell]
        got_tokens, got_calls, score = observed.models.get(cell, (None, None, None))
        if (got_tokens, got_calls, score) != (tokens, calls, tokens):
            wrong.append(
                f"model {cell}: tokens, calls, score {got_tokens}, {got_calls}, {score} "
                f"!= {tokens}, {calls}, {tokens}"
            )
    for app in sorted(expected.apps):
        if observed.apps.get(app) != expected.apps[app]:
            wrong.append(f"app {app}: {observed.apps.get(app)} != {expected.apps[app]}")
    return wrong


def _int(value: bytes | str | float | None) -> int | None:
    """A Redis hash field or score as an int (None stays None)."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return int(float(value))


async def read_observed(client: aioredis.Redis, keys: RedisKeys, expected: Totals) -> Observed:
    """Read every key :func:`mismatches` compares, in one pipeline."""
    weeks = sorted(expected.week_tokens)
    cells = sorted(expected.models)
    apps = sorted(expected.apps)
    pipe = client.pipeline(transaction=False)
    for week in weeks:
        pipe.hmget(keys.total(week), ["tokens", "calls"])
    for week, model in cells:
        pipe.hmget(keys.member("model", week, model), ["tokens", "calls"])
        pipe.zscore(keys.leaderboard("model", week), model)
    for week, name in apps:
        if name == NO_APP:  # never ranked: only its member hash
            pipe.hget(keys.member("app", week, name), "tokens")
        else:
            pipe.zscore(keys.leaderboard("app", week), name)
    values = iter(await pipe.execute())
    observed = Observed()
    for week in weeks:
        tokens, calls = next(values)
        observed.week_tokens[week], observed.week_calls[week] = _int(tokens), _int(calls)
    for cell in cells:
        tokens, calls = next(values)
        observed.models[cell] = (_int(tokens), _int(calls), _int(next(values)))
    for app in apps:
        observed.apps[app] = _int(next(values))
    return observed


def batch_due(elapsed_s: float, rate: float, sent: int, max_batch: int) -> int:
    """Events to send now so that ``sent`` keeps up with ``rate`` events/s since the start,
    at most ``max_batch`` (a stalled sender catches up in bounded batches)."""
    return max(0, min(math.floor(elapsed_s * rate) - sent, max_batch))


def next_tick(elapsed_s: float, interval_s: float) -> float:
    """The first multiple of ``interval_s`` after ``elapsed_s``: ticks keep to the clock,
    however long a batch took."""
    return (math.floor(elapsed_s / interval_s + 1e-9) + 1) * interval_s


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``(x, y)`` points (None: fewer than 3, or one x only)."""
    if len(points) < MIN_POINTS:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx <= 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx


def settled(samples: Sequence[tuple[float, float]], warmup_s: float) -> list[tuple[float, float]]:
    """The ``(age s, RSS MiB)`` samples taken after the first ``warmup_s`` of a life."""
    return [(age, rss) for age, rss in samples if age >= warmup_s]


def rss_slope_per_10min(samples: Sequence[tuple[float, float]], warmup_s: float) -> float | None:
    """RSS growth of one worker in MiB per 10 min, over its samples after ``warmup_s``."""
    per_s = slope(settled(samples, warmup_s))
    return None if per_s is None else per_s * 600


def pooled_rss_slope_per_10min(
    lives: Iterable[Sequence[tuple[float, float]]], warmup_s: float
) -> float | None:
    """One slope for every worker life (MiB per 10 min): least squares with an intercept of
    each life's own (each life's samples centred on its means), so a new worker starting
    lower than the one it replaced is not read as a change of slope."""
    sxx = sxy = 0.0
    points = 0
    for samples in lives:
        kept = settled(samples, warmup_s)
        if len(kept) < MIN_POINTS:
            continue
        mean_x = sum(x for x, _ in kept) / len(kept)
        mean_y = sum(y for _, y in kept) / len(kept)
        sxx += sum((x - mean_x) ** 2 for x, _ in kept)
        sxy += sum((x - mean_x) * (y - mean_y) for x, y in kept)
        points += len(kept)
    if points == 0 or sxx <= 0:
        return None
    return sxy / sxx * 600


def longest_pause(changes: Sequence[float], start: float, end: float) -> float:
    """The longest time in [start, end] during which the sampled value did not change
    (``changes``: the times it was seen changed)."""
    if end <= start:
        return 0.0
    points = [start, *sorted(t for t in changes if start < t < end), end]
    return max(b - a for a, b in itertools.pairwise(points))


@dataclass
class Life:
    """One worker process from start to its kill (a *generation* of its slot)."""

    slot: str
    index: int
    pid: int
    born: float  # time.monotonic() at its start
    log: str
    #: seconds from its start to its end (kill, stop or exit); None while it runs
    lived_s: float | None = None
    end: str = "running"
    #: seconds from its start until /readyz answered 200
    ready_s: float | None = None
    #: (seconds since its start, RSS MiB)
    samples: list[tuple[float, float]] = field(default_factory=list)
    cpu_s: float = 0.0

    def ended(self, how: str) -> None:
        """Note its end now."""
        self.lived_s, self.end = time.monotonic() - self.born, how

    @property
    def name(self) -> str:
        """``a0``, ``b0``, ``a1``, ..."""
        return f"{self.slot}{self.index}"


@dataclass
class Kill:
    """One SIGKILL and the replacement started at once."""

    number: int
    at_s: float
    victim: str
    replacement: str
    #: longest pause of the week total from the kill to the next kill (or the load's end)
    pause_s: float | None = None


@dataclass
class SoakResult:
    """Everything the results file and the exit status need."""

    run_id: str
    command: str
    started_utc: str
    minutes: float
    rate: float
    kill_every_s: float
    warmup_s: float
    code: str = ""
    code_after: str = ""
    settings_note: str = ""
    machine_note: str = ""
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_s: float = 0.0
    sent: int = 0
    batches: int = 0
    resent: int = 0
    max_behind: int = 0
    counted: int = 0
    tokens_expected: int = 0
    tokens_counted: int = 0
    exact: bool = False
    exact_after_s: float | None = None
    wrong: list[str] = field(default_factory=list)
    longest_pause_s: float = 0.0
    kills: list[Kill] = field(default_factory=list)
    lives: list[Life] = field(default_factory=list)
    unexpected_exits: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    kept: bool = False
    log_dir: str = ""

    @property
    def lost(self) -> int:
        """Acknowledged events missing from the counts."""
        return max(0, self.sent - self.counted)

    @property
    def duplicates(self) -> int:
        """Events counted more often than acknowledged."""
        return max(0, self.counted - self.sent)

    @property
    def passed(self) -> bool:
        """Exact, no worker exited on its own, nothing failed."""
        return self.exact and not self.unexpected_exits and not self.errors


def _mmss(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def _num(value: float | None, digits: int = 1, sign: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+,.{digits}f}" if sign else f"{value:,.{digits}f}"


def render_markdown(r: SoakResult) -> str:
    """The run's section of the results file."""
    verdict = "exact" if r.exact else "**NOT EXACT**"
    if r.unexpected_exits:
        verdict += ", **a worker exited on its own**"
    pooled = pooled_rss_slope_per_10min([life.samples for life in r.lives], r.warmup_s)
    pooled_n = sum(
        n for life in r.lives if (n := len(settled(life.samples, r.warmup_s))) >= MIN_POINTS
    )
    exact_after = (
        f"yes, {r.exact_after_s:.1f} s after the last acknowledgement"
        if r.exact and r.exact_after_s is not None
        else "**no**"
    )
    lines = [
        f"## {r.started_utc}: {r.minutes:g} min at {r.rate:g}/s, SIGKILL every "
        f"{r.kill_every_s:g} s ({verdict})",
        "",
        "```sh",
        r.command,
        "```",
        "",
        f"Run `{r.run_id}` (topic prefix, app id and Redis prefix), code {r.code}"
        + (f" (**changed during the run**: {r.code_after})" if r.code_after != r.code else "")
        + f". {r.settings_note} {r.machine_note} Load average before "
        f"{', '.join(f'{v:.1f}' for v in r.load_before)}, after "
        f"{', '.join(f'{v:.1f}' for v in r.load_after)}.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| load | {_mmss(r.load_s)} (min:s), {r.batches:,} batches, "
        f"{r.sent / max(r.load_s, 1e-9):,.1f} events/s acknowledged; most events behind the "
        f"clock {r.max_behind:,} |",
        f"| events sent (acknowledged) | {r.sent:,} ({r.tokens_expected:,} tokens) |",
        f"| events sent again after a send error (same ids) | {r.resent:,} |",
        f"| events counted (calls in Redis) | {r.counted:,} ({r.tokens_counted:,} tokens) |",
        f"| lost | {r.lost:,} |",
        f"| duplicates counted | {r.duplicates:,} |",
        f"| exact (every week total, model and app) | {exact_after} |",
        f"| SIGKILLs | {len(r.kills)} |",
        f"| workers that exited on their own | {len(r.unexpected_exits)} |",
        f"| longest pause of the week total while the load ran | {r.longest_pause_s:.1f} s |",
        f"| RSS slope, all lives pooled | {_num(pooled, sign=True)} MiB / 10 min "
        f"({pooled_n} samples after {r.warmup_s:g} s of life) |",
        "",
    ]
    if r.kills:
        lines += [
            "| kill | at min:s | SIGKILLed | started | replacement ready s | longest pause "
            "until the next kill s |",
            "| ---: | ---: | --- | --- | ---: | ---: |",
        ]
        ready = {life.name: life.ready_s for life in r.lives}
        lines += [
            f"| {k.number} | {_mmss(k.at_s)} | {k.victim} | {k.replacement} | "
            f"{_num(ready.get(k.replacement))} | {_num(k.pause_s)} |"
            for k in r.kills
        ]
        lines.append("")
    lines += [
        f"| worker | lived min:s | end | RSS MiB at {r.warmup_s:g} s | RSS MiB last | "
        f"RSS MiB max | samples after {r.warmup_s:g} s | RSS slope MiB / 10 min | CPU % |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for life in r.lives:
        kept = settled(life.samples, r.warmup_s)
        lived = life.lived_s or 0.0
        rss_max = max((rss for _, rss in life.samples), default=None)
        cpu = 100 * life.cpu_s / lived if lived > 0 else None
        lines.append(
            f"| {life.name} | {_mmss(lived)} | {life.end} | "
            f"{_num(kept[0][1] if kept else None)} | "
            f"{_num(life.samples[-1][1] if life.samples else None)} | {_num(rss_max)} | "
            f"{len(kept)} | {_num(rss_slope_per_10min(life.samples, r.warmup_s), sign=True)} | "
            f"{_num(cpu, 0)} |"
        )
    lines.append("")
    notes = []
    if r.wrong:
        notes.append(f"Not exact after the deadline, {len(r.wrong)} keys wrong, e.g.:")
        notes += [f"  - {w}" for w in r.wrong[:10]]
    notes += [f"Worker exited on its own: {e}" for e in r.unexpected_exits]
    notes += [f"Error: {e}" for e in r.errors]
    if r.kept:
        notes.append(
            f"Topics `{r.run_id}*` and Redis keys `{r.run_id}:*` kept for analysis; "
            f"`python -m bench.soak --cleanup {r.run_id}` deletes them."
        )
    notes.append(f"Worker logs: `{r.log_dir}`.")
    lines += [f"- {n}" if not n.startswith("  ") else n for n in notes]
    return "\n".join(lines) + "\n"


SOAK_HEADER = """# Soak runs (`bench/soak.py`)

Written by `python -m bench.soak` (one section per run, newest last): a steady load through
the SDK for a long time with a worker SIGKILLed at a fixed interval and a replacement started
at once; at the end Redis must show exactly the totals of every acknowledged event. *Longest
pause* is the longest time the week's total in Redis did not change while the load ran
(sampled every 0.25 s). *RSS slope* is the least-squares slope of a worker's RSS
(`/proc/<pid>/status` VmRSS, every 5 s) after its first minutes of life, in MiB per 10 min;
*pooled* fits one slope to every life, each with its own intercept. Kill times count from
the start of the load, a worker's life from its process start (for the first two, their
start-up before the load included). CPU % is of one core over its life.

"""


def append_markdown(path: Path, section: str) -> None:
    """Append ``section`` to the results file, with its header when the file is new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.read_text() if path.exists() else ""
    text = (existing or SOAK_HEADER).rstrip("\n") + "\n\n" + section
    path.write_text(text)


def redacted(url: str) -> str:
    """``url`` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def command_line(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """The command that repeats this run: the stack's addresses and the flags given."""
    shown = []
    for name in ("TOKENBOARD_KAFKA_BOOTSTRAP", "TOKENBOARD_REDIS_URL"):
        if env.get(name):
            shown.append(f"{name}={shlex.quote(redacted(env[name]))}")
    return " ".join(
        [*shown, "PYTHONPATH=.", ".venv/bin/python", "-m", "bench.soak", *map(shlex.quote, argv)]
    )


# The run ---------------------------------------------------------------------------------
class Soak:
    """The workers, the load, the kills and the samplers of one run."""

    def __init__(self, settings: Settings, result: SoakResult, log_dir: Path) -> None:
        self.settings = settings
        self.result = result
        self.log_dir = log_dir
        self.keys = RedisKeys(settings.redis_prefix)
        self.expected = Totals()
        self.workers: dict[str, tuple[WorkerProcess, Life]] = {}
        self.generation = dict.fromkeys(SLOTS, 0)
        self.t0 = time.monotonic()
        self.total_changes: list[float] = []
        self.last_total: object = None
        self.load_over = asyncio.Event()
        #: Ends the samplers: they check it rather than rely on being cancelled, since the
        #: Redis client can lose a cancellation that arrives during a command (redis-py 8.1).
        self.stopping = asyncio.Event()
        self._ready_tasks: set[asyncio.Task[None]] = set()

    def now(self) -> float:
        """Seconds since the run's start."""
        return time.monotonic() - self.t0

    async def pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less once :attr:`stopping` is set."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    def start_worker(self, slot: str) -> Life:
        """Start the next generation of ``slot`` (and note when it is ready)."""
        index = self.generation[slot]
        self.generation[slot] += 1
        name = f"{self.result.run_id}-{slot}{index}"
        worker = WorkerProcess(self.settings, name, self.log_dir / f"{name}.log", loglevel="info")
        worker.start()
        life = Life(
            slot=slot, index=index, pid=worker.pid, born=time.monotonic(), log=str(worker.log_path)
        )
        self.workers[slot] = (worker, life)
        self.result.lives.append(life)
        task = asyncio.ensure_future(self._note_ready(worker, life))
        self._ready_tasks.add(task)
        task.add_done_callback(self._ready_tasks.discard)
        return life

    async def _note_ready(self, worker: WorkerProcess, life: Life) -> None:
        with contextlib.suppress(Exception):
            await worker.wait_ready_async(READY_TIMEOUT_S)
            life.ready_s = time.monotonic() - life.born

    async def kill(self, slot: str, number: int) -> None:
        """SIGKILL the slot's worker and start its replacement at once."""
        worker, life = self.workers[slot]
        life.cpu_s = cpu_seconds(worker.pid)
        at = self.now()
        await asyncio.to_thread(worker.kill)
        life.ended("SIGKILL")
        replacement = self.start_worker(slot)
        self.result.kills.append(Kill(number, at, life.name, replacement.name))
        say(f"  [{_mmss(at)}] SIGKILL {life.name} (pid {life.pid}), started {replacement.name}")

    async def killer(self, load_end_s: float, every_s: float) -> None:
        """A kill every ``every_s`` seconds while the load runs, the slots in turn."""
        for number in itertools.count(1):
            at = number * every_s
            if at >= load_end_s:
                return
            await asyncio.sleep(max(0.0, at - self.now()))
            await self.kill(SLOTS[(number - 1) % len(SLOTS)], number)

    async def producer(self, load_end_s: float, rate: float) -> None:
        """The steady load until ``load_end_s``; each batch acknowledged before the next."""
        max_batch = max(1, math.ceil(rate * 1.0))
        n = 0
        started = self.now()
        async with UsageProducer(self.settings) as producer:
            while (elapsed := self.now() - started) < load_end_s - started:
                due = batch_due(elapsed, rate, n, max_batch)
                self.result.max_behind = max(
                    self.result.max_behind, math.floor(elapsed * rate) - n - due
                )
                if due:
                    ts_ms = int(time.time() * 1000)
                    events = [soak_event(self.result.run_id, n + i, ts_ms) for i in range(due)]
                    await self._send(producer, events)
                    self.expected.add(events)
                    n += due
                    self.result.sent = self.expected.events
                    self.result.batches += 1
                await asyncio.sleep(
                    max(0.0, next_tick(self.now() - started, TICK_S) + started - self.now())
                )
        self.result.load_s = self.now() - started

    async def _send(self, producer: UsageProducer, events: list[UsageEvent]) -> None:
        give_up = time.monotonic() + SEND_GIVE_UP_S
        while True:
            try:
                await asyncio.wait_for(producer.send_many(events), SEND_TIMEOUT_S)
                return
            except (KafkaError, TimeoutError) as exc:
                if time.monotonic() > give_up:
                    raise RuntimeError(
                        f"a batch not acknowledged for {SEND_GIVE_UP_S:.0f} s"
                    ) from exc
                self.result.resent += len(events)
                say(f"  [{_mmss(self.now())}] send failed ({type(exc).__name__}: {exc}); again")
                await asyncio.sleep(1)

    async def watch_total(self, client: aioredis.Redis) -> None:
        """Note each time the week totals' tokens change (sampled every 0.25 s)."""
        while not self.stopping.is_set():
            weeks = sorted(self.expected.week_tokens)
            if weeks:
                with contextlib.suppress(aioredis.RedisError, OSError):
                    pipe = client.pipeline(transaction=False)
                    for week in weeks:
                        pipe.hget(self.keys.total(week), "tokens")
                    value = tuple(await pipe.execute())
                    if value != self.last_total:
                        self.last_total = value
                        self.total_changes.append(self.now())
            await self.pause(TOTAL_POLL_S)

    async def sample_rss(self) -> None:
        """Every worker's RSS every 5 s; a worker that exited on its own is replaced."""
        while not self.stopping.is_set():
            for slot, (worker, life) in list(self.workers.items()):
                if life.end != "running":
                    continue
                if not worker.alive():
                    code = worker.proc.poll() if worker.proc is not None else None
                    life.ended(f"exited ({code})")
                    self.result.unexpected_exits.append(
                        f"{life.name} (pid {life.pid}) exited with {code} at "
                        f"{_mmss(self.now())} (min:s); see {life.log}"
                    )
                    say(f"  [{_mmss(self.now())}] {life.name} EXITED ({code}); replacing it")
                    if not self.load_over.is_set():
                        self.start_worker(slot)
                    continue
                rss = rss_mib(worker.pid)
                if rss > 0:
                    life.samples.append((time.monotonic() - life.born, rss))
                    life.cpu_s = cpu_seconds(worker.pid)
            await self.pause(RSS_EVERY_S)

    async def progress(self, client: aioredis.Redis) -> None:
        """A line every 30 s: sent, counted, kills, RSS."""
        while True:
            await self.pause(PROGRESS_EVERY_S)
            if self.stopping.is_set():
                return
            counted = "?"
            with contextlib.suppress(aioredis.RedisError, OSError):
                counted_calls = 0
                for week in sorted(self.expected.week_calls):
                    counted_calls += _int(await client.hget(self.keys.total(week), "calls")) or 0
                counted = f"{counted_calls:,} (behind {self.result.sent - counted_calls:,})"
            rss = ", ".join(
                f"{life.name} {life.samples[-1][1]:.0f}"
                for _, life in self.workers.values()
                if life.samples and life.end == "running"
            )
            elapsed = self.now()
            say(
                f"  [{_mmss(elapsed)}] sent {self.result.sent:,} "
                f"({self.result.sent / max(elapsed, 1e-9):,.0f}/s), counted {counted}, "
                f"kills {len(self.result.kills)}, RSS MiB {rss}, "
                f"load {os.getloadavg()[0]:.1f}"
            )

    async def wait_exact(self, client: aioredis.Redis, deadline_s: float) -> None:
        """Until Redis shows the expected totals exactly, or ``deadline_s`` passed."""
        started = time.monotonic()
        while True:
            wrong = ["Redis not readable"]
            with contextlib.suppress(aioredis.RedisError, OSError):
                observed = await read_observed(client, self.keys, self.expected)
                wrong = mismatches(self.expected, observed)
                self.result.counted = observed.calls
                self.result.tokens_counted = sum(v or 0 for v in observed.week_tokens.values())
            if not wrong:
                self.result.exact_after_s = time.monotonic() - started
                # Still exact a while later: nothing counted twice after the fact.
                await asyncio.sleep(STILL_EXACT_S)
                observed = await read_observed(client, self.keys, self.expected)
                self.result.counted = observed.calls
                self.result.tokens_counted = sum(v or 0 for v in observed.week_tokens.values())
                self.result.wrong = mismatches(self.expected, observed)
                self.result.exact = not self.result.wrong
                return
            if time.monotonic() - started > deadline_s:
                self.result.wrong = wrong
                return
            await asyncio.sleep(0.5)

    async def stop_all(self) -> None:
        """SIGTERM every running worker (SIGKILL if one hangs)."""
        for worker, life in self.workers.values():
            if worker.alive():
                life.cpu_s = cpu_seconds(worker.pid)
                if life.end == "running":
                    life.ended("stopped at the end")
                await asyncio.to_thread(worker.stop)


async def cleanup(settings: Settings, run_id: str) -> tuple[int, list[str]]:
    """Delete the run's Redis keys and topics; (keys, topics) deleted."""
    client = aioredis.from_url(settings.redis_url)
    try:
        keys = await delete_prefix(client, run_id)
    finally:
        await client.aclose()
    topics = await delete_topics_with_prefix(settings, run_id)
    return keys, topics


async def run_soak(
    base: Settings,
    *,
    run_id: str,
    minutes: float,
    rate: float,
    kill_every_s: float,
    deadline_s: float,
    warmup_s: float,
    log_dir: Path,
    command: str,
) -> SoakResult:
    """The whole run; failures end up in the result, never raised."""
    settings = base.replace(topic_prefix=run_id, app_id=run_id, redis_prefix=run_id)
    m = machine()
    result = SoakResult(
        run_id=run_id,
        command=command,
        started_utc=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        minutes=minutes,
        rate=rate,
        kill_every_s=kill_every_s,
        warmup_s=warmup_s,
        code=code_fingerprint(REPO),
        settings_note=(
            f"2 workers, {settings.partitions} partitions, block size {settings.block_size:,}, "
            f"flush {settings.flush_interval_ms} ms, snapshots every "
            f"{settings.snapshot_interval_ms} ms, standby replicas {settings.standby_replicas}."
        ),
        machine_note=f"{m.cores} cores ({m.cpu_model}), {m.memory_gib:.1f} GiB.",
        load_before=m.load_average,
        log_dir=str(log_dir),
    )
    log_dir.mkdir(parents=True, exist_ok=True)
    client = aioredis.from_url(settings.redis_url)
    soak = Soak(settings, result, log_dir)
    background: list[asyncio.Task[None]] = []
    try:
        await ensure_topics(settings)
        for slot in SLOTS:
            soak.start_worker(slot)
        for worker, _ in list(soak.workers.values()):
            await worker.wait_ready_async(READY_TIMEOUT_S)
        say(f"soak {run_id}: 2 workers ready; {minutes:g} min at {rate:g}/s, logs in {log_dir}")
        soak.t0 = time.monotonic()  # the run's clock starts once both workers are ready
        load_end_s = minutes * 60
        background = [
            asyncio.ensure_future(soak.watch_total(client)),
            asyncio.ensure_future(soak.sample_rss()),
            asyncio.ensure_future(soak.progress(client)),
            asyncio.ensure_future(soak.killer(load_end_s, kill_every_s)),
        ]
        load_started = soak.now()
        await soak.producer(load_end_s, rate)
        load_ended = soak.now()
        soak.load_over.set()
        await background[3]  # the killer: done once the next kill would be after the load
        result.longest_pause_s = longest_pause(soak.total_changes, load_started, load_ended)
        for i, k in enumerate(result.kills):
            until = result.kills[i + 1].at_s if i + 1 < len(result.kills) else load_ended
            k.pause_s = longest_pause(soak.total_changes, k.at_s, until)
        result.tokens_expected = sum(soak.expected.week_tokens.values())
        say(
            f"  [{_mmss(load_ended)}] load over: {result.sent:,} events acknowledged; waiting "
            f"up to {deadline_s:.0f} s for Redis to be exact"
        )
        await soak.wait_exact(client, deadline_s)
        say(
            f"  exact after {result.exact_after_s:.1f} s"
            if result.exact
            else f"  NOT exact after {deadline_s:.0f} s: {result.wrong[:3]}"
        )
    except Exception as exc:  # reported in the results, the run still cleans up
        result.errors.append(f"{type(exc).__name__}: {exc}")
        say(f"  error: {type(exc).__name__}: {exc}")
    finally:
        soak.load_over.set()
        soak.stopping.set()
        if background:
            _, pending = await asyncio.wait(background, timeout=30)
            for task in pending:
                task.cancel()
                result.errors.append(f"{task.get_coro()!r} did not stop within 30 s")
        for task in background:
            if task.done() and not task.cancelled() and task.exception() is not None:
                result.errors.append(f"{task.get_coro()!r}: {task.exception()!r}")
        await soak.stop_all()
        result.load_after = os.getloadavg()
        result.code_after = code_fingerprint(REPO)
        await client.aclose()
        if result.passed:
            keys, topics = await cleanup(settings, run_id)
            say(f"  deleted {keys:,} Redis keys and {len(topics)} topics")
        else:
            result.kept = True
            say(f"  kept topics {run_id}* and Redis keys {run_id}:* for analysis")
    return result


def main(argv: list[str] | None = None) -> int:
    """Stand-alone run: progress on stderr, the section appended to ``--out``."""
    args_list = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the load runs")
    parser.add_argument("--rate", type=float, default=300.0, help="events per second")
    parser.add_argument(
        "--kill-every", type=float, default=180.0, help="seconds between SIGKILLs of a worker"
    )
    parser.add_argument(
        "--deadline", type=float, default=180.0, help="seconds for Redis to be exact at the end"
    )
    parser.add_argument(
        "--rss-warmup",
        type=float,
        default=120.0,
        help="seconds of each worker's life left out of its RSS slope",
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "SOAK.md"))
    parser.add_argument(
        "--log-dir", default=None, help="worker logs (default bench/data/logs/<run id>)"
    )
    parser.add_argument(
        "--cleanup", metavar="RUN_ID", help="only delete a kept run's topics and Redis keys"
    )
    args = parser.parse_args(args_list)
    settings = Settings.from_env()
    if args.cleanup:
        keys, topics = asyncio.run(cleanup(settings, args.cleanup))
        print(f"deleted {keys:,} Redis keys and {len(topics)} topics of {args.cleanup}")
        return 0
    if args.rate <= 0 or args.minutes <= 0 or args.kill_every <= 0:
        parser.error("--rate, --minutes and --kill-every must be positive")
    run_id = "soak" + datetime.now().strftime("%Y%m%d%H%M%S")
    log_dir = (
        Path(args.log_dir) if args.log_dir else Path(__file__).parent / "data" / "logs" / run_id
    )
    result = asyncio.run(
        run_soak(
            settings,
            run_id=run_id,
            minutes=args.minutes,
            rate=args.rate,
            kill_every_s=args.kill_every,
            deadline_s=args.deadline,
            warmup_s=args.rss_warmup,
            log_dir=log_dir,
            command=command_line(args_list, os.environ),
        )
    )
    section = render_markdown(result)
    append_markdown(Path(args.out), section)
    print(section)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
