"""The simulator's traffic model: skewed popularity, daily cycle, trends, valid events."""

from __future__ import annotations

import random
import statistics
from collections import Counter
from datetime import datetime

import pytest

from aggregations.catalog import ModelInfo
from aggregations.events import decode_event, encode_event
from aggregations.traffic import DAY_MS, HOUR_MS, WEEK_MS, TrafficModel, daily_factor


def ms(text: str) -> int:
    """Epoch ms of an ISO timestamp, computed independently of the code under test."""
    return int(datetime.fromisoformat(text).timestamp()) * 1000


MIDNIGHT = ms("2026-11-18T00:00:00+00:00")
PEAK = MIDNIGHT + 14 * HOUR_MS
TROUGH = MIDNIGHT + 2 * HOUR_MS
MODELS = [ModelInfo(f"lab{i}/model-{i}", f"Model {i}", f"Lab {i}", "US") for i in range(50)]


def make_model(
    seed: int = 7, *, id_prefix: str | None = None, anchor_ms: int | None = None
) -> TrafficModel:
    """A traffic model over the 50 test models."""
    return TrafficModel(MODELS, seed, id_prefix=id_prefix, anchor_ms=anchor_ms)


def test_popularity_is_skewed() -> None:
    """The most used model gets far more events than the median model."""
    counts = Counter(e.model for e in make_model().next_events(20_000, PEAK))
    shares = sorted((counts.get(m.id, 0) / 20_000 for m in MODELS), reverse=True)
    assert shares[0] > 5 * statistics.median(shares)
    assert sum(shares[:5]) > 0.4


def test_counts_and_shares_sum_up() -> None:
    """n events are drawn, the expected shares sum to 1 and tokens = prompt + completion."""
    model = make_model()
    events = model.next_events(5000, PEAK)
    assert len(events) == 5000
    assert sum(model.shares(PEAK).values()) == pytest.approx(1.0)
    assert sum(Counter(e.model for e in events).values()) == 5000
    for e in events:
        assert e.tokens == e.prompt_tokens + e.completion_tokens
        assert 0 <= e.reasoning_tokens <= e.completion_tokens
        assert 0 <= e.cached_tokens <= e.prompt_tokens


def test_every_event_is_valid_and_round_trips() -> None:
    """Each event survives encode_event + decode_event unchanged, ids are unique."""
    events = make_model().next_events(5000, PEAK)
    for e in events:
        assert decode_event(encode_event(e), now_ms=PEAK) == e
        assert PEAK - 2000 < e.ts_ms <= PEAK
    assert len({e.event_id for e in events}) == len(events)


def test_token_sizes_are_realistic() -> None:
    """Median prompts are a few thousand tokens, median completions a few hundred."""
    events = [e for e in make_model().next_events(20_000, MIDNIGHT + 8 * HOUR_MS) if e.calls == 1]
    assert 1000 < statistics.median(e.prompt_tokens for e in events) < 8000
    assert 100 < statistics.median(e.completion_tokens for e in events) < 2000


def test_some_events_are_rollups() -> None:
    """A few events roll up several calls, with correspondingly larger token counts."""
    events = make_model().next_events(20_000, PEAK)
    rollups = [e for e in events if e.calls > 1]
    assert 0.01 < len(rollups) / len(events) < 0.1
    singles = [e.tokens for e in events if e.calls == 1]
    assert statistics.median(e.tokens for e in rollups) > 5 * statistics.median(singles)


def test_daily_cycle_peaks_in_the_afternoon_and_averages_one() -> None:
    """daily_factor peaks at 14:00 UTC, bottoms at 02:00 and its day mean is 1."""
    hours = [daily_factor(MIDNIGHT + h * HOUR_MS) for h in range(24)]
    assert max(range(24), key=lambda h: hours[h]) == 14
    assert min(range(24), key=lambda h: hours[h]) == 2
    assert sum(hours) / 24 == pytest.approx(1.0)
    assert daily_factor(PEAK + DAY_MS) == pytest.approx(daily_factor(PEAK))


def test_afternoon_traffic_carries_more_tokens() -> None:
    """The same number of events carries more tokens at the peak than at the trough."""
    peak = sum(e.tokens for e in make_model().next_events(10_000, PEAK))
    trough = sum(e.tokens for e in make_model().next_events(10_000, TROUGH))
    assert peak > 1.5 * trough


def test_trends_grow_some_models_and_shrink_others() -> None:
    """Over four weeks growing models gain share and declining ones lose it."""
    model = make_model(anchor_ms=PEAK)
    before, after = model.shares(PEAK), model.shares(PEAK + 4 * WEEK_MS)
    growing = [p.model.id for p in model.profiles if p.weekly_growth > 0.1]
    declining = [p.model.id for p in model.profiles if p.weekly_growth < -0.1]
    assert growing and declining
    assert all(after[m] > before[m] for m in growing)
    assert all(after[m] < before[m] for m in declining)


def test_same_seed_same_events_and_prefixes_separate_runs() -> None:
    """A seed reproduces a run exactly; distinct id prefixes keep two runs' ids apart."""
    first = make_model(seed=3).next_events(200, PEAK)
    assert make_model(seed=3).next_events(200, PEAK) == first
    other = make_model(seed=3, id_prefix="run-b").next_events(200, PEAK)
    assert not {e.event_id for e in first} & {e.event_id for e in other}


def test_an_explicit_rng_drives_the_model() -> None:
    """Passing a Random instance gives the same stream as seeding it the same way."""
    first = TrafficModel(MODELS, rng=random.Random(11)).next_events(100, PEAK)
    second = TrafficModel(MODELS, rng=random.Random(11)).next_events(100, PEAK)
    assert [e.model for e in first] == [e.model for e in second]


def test_needs_models() -> None:
    """An empty model list is refused."""
    with pytest.raises(ValueError, match="at least one model"):
        TrafficModel([], 1)
