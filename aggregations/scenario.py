"""Scenario tables (exact weekly tokens per model) and the usage events that replay them.

Format: see tests/data/README.md. Every (week, model) cell becomes ``events_per_cell``
events whose token sums are exactly the cell; their times are spread over the week and their
ids are deterministic, so replaying a scenario twice counts it once.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aggregations.events import UsageEvent
from aggregations.weeks import WEEK_MS, parse_week, week_start_ms

#: Tokens one rolled-up call carries at most in replayed events (the validator allows 10M).
TOKENS_PER_CALL = 4_000_000


@dataclass(frozen=True, slots=True)
class ScenarioModel:
    """One row of a scenario table."""

    id: str
    name: str
    vendor: str
    country: str
    tokens: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A table of exact weekly totals per model."""

    name: str
    top_n: int
    weeks: tuple[str, ...]
    models: tuple[ScenarioModel, ...]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Scenario:
        """Parse and check the JSON form (clear ValueError on a malformed table)."""
        weeks = tuple(str(w) for w in data["weeks"])
        for week in weeks:
            parse_week(week)
        models = []
        for row in data["models"]:
            tokens = tuple(int(t) for t in row["tokens"])
            if len(tokens) != len(weeks):
                raise ValueError(
                    f"model {row['id']}: {len(tokens)} token cells for {len(weeks)} weeks"
                )
            if any(t < 0 for t in tokens):
                raise ValueError(f"model {row['id']}: negative tokens")
            models.append(
                ScenarioModel(row["id"], row["name"], row["vendor"], row["country"], tokens)
            )
        return cls(str(data["name"]), int(data.get("top_n", 10)), weeks, tuple(models))

    def cell_totals(self) -> dict[tuple[str, str], int]:
        """(week, model) -> tokens for every non-zero cell."""
        return {
            (week, m.id): t
            for m in self.models
            for week, t in zip(self.weeks, m.tokens, strict=True)
            if t
        }

    def week_totals(self) -> dict[str, int]:
        """week -> global tokens."""
        totals = dict.fromkeys(self.weeks, 0)
        for (week, _), tokens in self.cell_totals().items():
            totals[week] += tokens
        return totals

    def event_count(self, events_per_cell: int) -> int:
        """How many events :func:`replay_events` yields."""
        return len(self.cell_totals()) * events_per_cell


def split_exact(total: int, parts: int, rng: random.Random) -> list[int]:
    """``parts`` positive-or-zero integers of uneven size that sum to ``total`` exactly."""
    weights = [rng.uniform(0.5, 1.5) for _ in range(parts)]
    scale = sum(weights)
    shares = [int(total * w / scale) for w in weights]
    shares[-1] += total - sum(shares)
    return shares


def replay_events(scenario: Scenario, events_per_cell: int, seed: int = 47) -> Iterator[UsageEvent]:
    """Events for every cell, in event-time order, summing exactly to the table."""
    if events_per_cell < 1:
        raise ValueError("events_per_cell must be >= 1")
    rng = random.Random(seed)
    events: list[UsageEvent] = []
    for model in scenario.models:
        for week, tokens in zip(scenario.weeks, model.tokens, strict=True):
            if not tokens:
                continue
            start = week_start_ms(week)
            for i, part in enumerate(split_exact(tokens, events_per_cell, rng)):
                # Spread over the week, away from its edges so the grace period never matters.
                slot = WEEK_MS // events_per_cell
                ts = start + i * slot + rng.randrange(max(1, slot))
                prompt = part * 3 // 4
                events.append(
                    UsageEvent(
                        event_id=f"{scenario.name}:{week}:{model.id}:{i}",
                        ts_ms=min(ts, start + WEEK_MS - 1),
                        model=model.id,
                        prompt_tokens=prompt,
                        completion_tokens=part - prompt,
                        calls=max(1, -(-part // TOKENS_PER_CALL)),
                        vendor=model.vendor,
                        country=model.country,
                    )
                )
    events.sort(key=lambda e: (e.ts_ms, e.event_id))
    yield from events
