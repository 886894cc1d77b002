"""Synthetic LLM usage traffic for ``tokenboard simulate``, the demo and the benchmarks.

A :class:`TrafficModel` draws usage events that look like a real gateway's: a few models take
most of the traffic (Zipf-like popularity), token volume follows a daily cycle peaking in the
UTC afternoon, each model has its own weekly growth trend, and token counts are log-normal.

Pure: the clock comes in as ``now_ms`` and all randomness from one ``random.Random``, so a seed
reproduces a run event for event.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from aggregations.catalog import ModelInfo
from aggregations.events import UsageEvent
from aggregations.weeks import DAY_MS, WEEK_MS

__all__ = ["ModelTraffic", "TrafficModel", "daily_factor"]

HOUR_MS = 3_600_000

#: Hour of the day (UTC) at which token volume peaks.
PEAK_HOUR_UTC = 14.0
#: Token volume swings by this fraction around the daily mean (peak 1.35x, trough 0.65x).
DAILY_AMPLITUDE = 0.35
#: Popularity of the model ranked r is proportional to 1 / r**ZIPF_EXPONENT.
ZIPF_EXPONENT = 1.1
#: Share of events that are rollups of several calls, and their largest call count.
ROLLUP_SHARE = 0.03
MAX_ROLLUP_CALLS = 50
# Medians and log-space spreads chosen so 80% of prompts fall in ~1.3k-6k tokens and of
# completions in ~170-1.2k, with long tails (agents with huge contexts, long generations).
PROMPT_MEDIAN, PROMPT_SIGMA = 2800.0, 0.6
COMPLETION_MEDIAN, COMPLETION_SIGMA = 450.0, 0.75
MAX_PROMPT, MAX_COMPLETION = 400_000, 64_000
#: Events reach the gateway up to this long after the call finished.
MAX_REPORT_DELAY_MS = 2000
# Popularity is recomputed at most this often: growth trends move weights slowly.
_WEIGHT_REFRESH_MS = 60_000

APPS = ("chat", "agent", "coding", "search", "support-bot", "batch-eval")
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1")


def daily_factor(now_ms: int) -> float:
    """Token volume at ``now_ms`` relative to the day's mean: a sinusoid peaking at 14:00 UTC.

    Averages to exactly 1 over a whole day, so the daily cycle reshapes a day's tokens without
    changing their total.
    """
    hour = (now_ms % DAY_MS) / HOUR_MS
    return 1.0 + DAILY_AMPLITUDE * math.cos(2 * math.pi * (hour - PEAK_HOUR_UTC) / 24)


@dataclass(frozen=True, slots=True)
class ModelTraffic:
    """How one model's traffic behaves."""

    model: ModelInfo
    #: Popularity at the model's anchor time (Zipf weight of its rank).
    weight: float
    #: Compound change of popularity per week: 0.25 is +25%/week, -0.1 is -10%/week.
    weekly_growth: float
    #: Multiplier on token sizes: some models serve long-context or terse workloads.
    size_factor: float
    #: Fraction of completion tokens spent reasoning (0 for non-reasoning models).
    reasoning_share: float


def _growth(rng: random.Random) -> float:
    kind = rng.random()
    if kind < 0.30:
        return rng.uniform(0.05, 0.60)
    if kind < 0.55:
        return rng.uniform(-0.35, -0.05)
    return rng.uniform(-0.04, 0.04)


class TrafficModel:
    """Draws realistic usage events over a list of catalog models.

    ``rng`` (default ``random.Random(seed)``) drives everything: the popularity order of the
    models, their trends and every event. Event ids are ``"{id_prefix}-{n}"`` with a counter,
    so they are unique within one model; give each run its own ``id_prefix`` (the default is
    derived from the seed), or a second run with the same seed repeats the first run's ids and
    the pipeline drops its events as duplicates. Growth trends compound from ``anchor_ms``,
    by default the ``now_ms`` of the first :meth:`next_events` call.
    """

    def __init__(
        self,
        models: Sequence[ModelInfo],
        seed: int = 1,
        rng: random.Random | None = None,
        *,
        id_prefix: str | None = None,
        anchor_ms: int | None = None,
    ) -> None:
        if not models:
            raise ValueError("a traffic model needs at least one model")
        self._rng = rng if rng is not None else random.Random(seed)
        ranked = list(models)
        # Popularity ranks are shuffled so the leader is not whatever sorts first by id.
        self._rng.shuffle(ranked)
        self.profiles: tuple[ModelTraffic, ...] = tuple(
            ModelTraffic(
                model=info,
                weight=1.0 / (rank**ZIPF_EXPONENT),
                weekly_growth=_growth(self._rng),
                size_factor=self._rng.lognormvariate(0.0, 0.3),
                reasoning_share=self._rng.uniform(0.2, 0.7) if self._rng.random() < 0.35 else 0.0,
            )
            for rank, info in enumerate(ranked, start=1)
        )
        self.id_prefix = id_prefix if id_prefix is not None else f"sim{seed}"
        self.anchor_ms = anchor_ms
        self._counter = 0
        self._cum_weights: list[float] = []
        self._weights_at: int | None = None

    def weights(self, now_ms: int) -> list[float]:
        """Relative popularity of each profile at ``now_ms`` (same order as :attr:`profiles`)."""
        anchor = self.anchor_ms if self.anchor_ms is not None else now_ms
        weeks = (now_ms - anchor) / WEEK_MS
        return [p.weight * (1.0 + p.weekly_growth) ** weeks for p in self.profiles]

    def shares(self, now_ms: int) -> dict[str, float]:
        """Expected share of events per model id at ``now_ms``; the shares sum to 1."""
        weights = self.weights(now_ms)
        total = sum(weights)
        return {p.model.id: w / total for p, w in zip(self.profiles, weights, strict=True)}

    def _cumulative(self, now_ms: int) -> list[float]:
        if self._weights_at is None or abs(now_ms - self._weights_at) >= _WEIGHT_REFRESH_MS:
            total = 0.0
            cumulative = []
            for weight in self.weights(now_ms):
                total += weight
                cumulative.append(total)
            self._cum_weights = cumulative
            self._weights_at = now_ms
        return self._cum_weights

    def next_events(self, n: int, now_ms: int) -> list[UsageEvent]:
        """``n`` new events that happened shortly before ``now_ms``."""
        if self.anchor_ms is None:
            self.anchor_ms = now_ms
        rng = self._rng
        volume = daily_factor(now_ms)
        picks = rng.choices(self.profiles, cum_weights=self._cumulative(now_ms), k=n)
        events = []
        for profile in picks:
            calls = rng.randint(2, MAX_ROLLUP_CALLS) if rng.random() < ROLLUP_SHARE else 1
            scale = volume * profile.size_factor
            prompt = completion = 0
            # A rollup sums independent calls rather than scaling one: its sizes vary less.
            for _ in range(calls):
                prompt += self._tokens(PROMPT_MEDIAN * scale, PROMPT_SIGMA, MAX_PROMPT)
                completion += self._tokens(
                    COMPLETION_MEDIAN * scale, COMPLETION_SIGMA, MAX_COMPLETION
                )
            cached = int(prompt * rng.uniform(0.2, 0.9)) if rng.random() < 0.35 else 0
            self._counter += 1
            events.append(
                UsageEvent(
                    event_id=f"{self.id_prefix}-{self._counter}",
                    ts_ms=now_ms - rng.randrange(MAX_REPORT_DELAY_MS),
                    model=profile.model.id,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    reasoning_tokens=int(completion * profile.reasoning_share),
                    cached_tokens=cached,
                    calls=calls,
                    app=rng.choice(APPS),
                    region=rng.choice(REGIONS),
                )
            )
        return events

    def _tokens(self, median: float, sigma: float, cap: int) -> int:
        value = int(self._rng.lognormvariate(math.log(median), sigma))
        return min(max(value, 1), cap)
