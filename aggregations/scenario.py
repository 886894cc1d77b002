"""Scenario tables (exact weekly tokens per model) and the usage events that replay them.

Format: see tests/data/README.md. Every (week, model) cell becomes ``events_per_cell``
events whose token sums are exactly the cell; their times are spread over the week and their
ids are deterministic, so replaying a scenario twice counts it once.
"""

from __future__ import annotations

import heapq
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


def exact_shares(total: int, parts: int, rng: random.Random) -> Iterator[int]:
    """``parts`` integers >= 0 of uneven size that sum to ``total`` exactly, one at a time.

    Share i is the step between two cut points ``(total * i + r_i) // parts``, each cut moved
    by a random ``r_i`` of at most 45 % of a share (``r_0 = r_parts = 0``): the cuts never
    cross, the steps telescope to ``total``, and nothing is held but the last cut, so a cell
    of millions of events costs no memory.
    """
    jitter = total * 45 // 100
    cut = 0
    for i in range(1, parts + 1):
        moved = rng.randint(-jitter, jitter) if i < parts else 0
        next_cut = (total * i + moved) // parts
        yield next_cut - cut
        cut = next_cut


def split_exact(total: int, parts: int, rng: random.Random) -> list[int]:
    """:func:`exact_shares` as a list."""
    return list(exact_shares(total, parts, rng))


def replay_events(scenario: Scenario, events_per_cell: int, seed: int = 47) -> Iterator[UsageEvent]:
    """Events for every cell, in event-time order, summing exactly to the table.

    Streamed: each (model, week) cell yields its events in time order from its own random
    generator, and a merge by (time, id) holds one event per cell at a time, so memory does
    not grow with ``events_per_cell``.
    """
    if events_per_cell < 1:
        raise ValueError("events_per_cell must be >= 1")
    if events_per_cell > WEEK_MS:
        raise ValueError(f"events_per_cell must be at most {WEEK_MS} (one per ms of a week)")
    cells = [
        _cell_events(scenario.name, model, week, tokens, events_per_cell, seed)
        for model in scenario.models
        for week, tokens in zip(scenario.weeks, model.tokens, strict=True)
        if tokens
    ]
    yield from heapq.merge(*cells, key=lambda e: (e.ts_ms, e.event_id))


def _cell_events(
    name: str, model: ScenarioModel, week: str, tokens: int, events_per_cell: int, seed: int
) -> Iterator[UsageEvent]:
    """One cell's events, strictly increasing in time (event i falls in the i-th slot)."""
    rng = random.Random(f"{seed}:{week}:{model.id}")
    start = week_start_ms(week)
    # Spread over the week, away from its edges so the grace period never matters.
    slot = WEEK_MS // events_per_cell
    for i, part in enumerate(exact_shares(tokens, events_per_cell, rng)):
        prompt = part * 3 // 4
        yield UsageEvent(
            event_id=f"{name}:{week}:{model.id}:{i}",
            ts_ms=start + i * slot + rng.randrange(slot),
            model=model.id,
            prompt_tokens=prompt,
            completion_tokens=part - prompt,
            calls=max(1, -(-part // TOKENS_PER_CALL)),
            vendor=model.vendor,
            country=model.country,
        )
