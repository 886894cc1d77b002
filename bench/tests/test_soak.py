"""Pure parts of the soak run: pacing, totals and their comparison, RSS slopes, pauses, the
results section."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregations.totals import NO_APP
from aggregations.weeks import week_id
from bench.soak import (
    APPS,
    MODELS,
    SOAK_HEADER,
    Kill,
    Life,
    Observed,
    SoakResult,
    Totals,
    append_markdown,
    batch_due,
    command_line,
    longest_pause,
    mismatches,
    next_tick,
    pooled_rss_slope_per_10min,
    redacted,
    render_markdown,
    rss_slope_per_10min,
    slope,
    soak_event,
)

NOW_MS = 1_795_900_000_000  # a Saturday in 2026-W48


def _observed(t: Totals) -> Observed:
    """What an exact Redis would show for ``t``."""
    return Observed(
        week_tokens=dict(t.week_tokens),
        week_calls=dict(t.week_calls),
        models={cell: (tok, calls, tok) for cell, (tok, calls) in t.models.items()},
        apps=dict(t.apps),
    )


def test_events_have_unique_ids_and_spread_over_models_and_apps() -> None:
    events = [soak_event("soak1", n, NOW_MS) for n in range(100)]
    assert len({e.event_id for e in events}) == 100
    assert {e.model for e in events} == set(MODELS)
    assert {e.app for e in events} == set(APPS)
    assert all(e.tokens > 0 and e.calls == 1 and e.ts_ms == NOW_MS for e in events)
    assert len({e.tokens for e in events}) > 50


def test_totals_add_up_per_week_model_and_app() -> None:
    events = [soak_event("soak1", n, NOW_MS) for n in range(40)]
    totals = Totals()
    totals.add(events[:25])
    totals.add(events[25:])
    week = week_id(NOW_MS)
    assert totals.events == 40
    assert totals.week_tokens == {week: sum(e.tokens for e in events)}
    assert totals.week_calls == {week: 40}
    assert sum(tok for tok, _ in totals.models.values()) == totals.week_tokens[week]
    assert totals.models[(week, MODELS[0])][1] == 8
    assert sum(totals.apps.values()) == totals.week_tokens[week]
    assert (week, NO_APP) in totals.apps


def test_mismatches_name_every_wrong_total_model_and_app() -> None:
    totals = Totals()
    totals.add(soak_event("soak1", n, NOW_MS) for n in range(20))
    week = week_id(NOW_MS)
    assert mismatches(totals, _observed(totals)) == []

    wrong = _observed(totals)
    wrong.week_calls[week] = 21  # one counted twice
    tokens, calls, score = wrong.models[(week, MODELS[1])]
    assert score is not None
    wrong.models[(week, MODELS[1])] = (tokens, calls, score - 5)  # the board behind its hash
    del wrong.apps[(week, "coder")]
    found = mismatches(totals, wrong)
    assert len(found) == 3
    assert found[0].startswith(f"total {week}")
    assert MODELS[1] in found[1] and "coder" in found[2]
    assert len(mismatches(totals, Observed())) == 1 + len(MODELS) + len(APPS)


def test_observed_calls_sum_the_weeks() -> None:
    assert Observed(week_calls={"2026-W48": 7, "2026-W49": None}).calls == 7


def test_batches_keep_to_the_rate_and_catch_up_in_bounded_steps() -> None:
    assert batch_due(0.0, 300, 0, 300) == 0
    assert batch_due(0.1, 300, 0, 300) == 30
    assert batch_due(0.1, 300, 30, 300) == 0
    assert batch_due(0.25, 300, 30, 300) == 45
    assert batch_due(10.0, 300, 0, 300) == 300  # behind by 3,000: one second's worth
    assert batch_due(1.0, 300, 400, 300) == 0  # ahead: nothing, never negative
    sent = 0
    for tick in range(1, 601):  # one minute of 0.1 s ticks at 300/s
        sent += batch_due(tick * 0.1, 300, sent, 300)
    assert sent == 18_000


def test_ticks_keep_to_the_clock() -> None:
    assert next_tick(0.0, 0.1) == pytest.approx(0.1)
    assert next_tick(0.1, 0.1) == pytest.approx(0.2)  # exactly on a tick: the next one
    assert next_tick(0.37, 0.1) == pytest.approx(0.4)
    assert next_tick(12.95, 0.5) == pytest.approx(13.0)


def test_slope_is_the_least_squares_fit() -> None:
    assert slope([(0, 1.0), (1, 3.0), (2, 5.0)]) == pytest.approx(2.0)
    assert slope([(0, 0.0), (1, 1.0), (2, 0.0), (3, 1.0)]) == pytest.approx(0.2)
    assert slope([(0, 1.0), (1, 2.0)]) is None  # too few
    assert slope([(5, 1.0), (5, 2.0), (5, 3.0)]) is None  # one x


def test_rss_slope_leaves_out_the_first_minutes_of_a_life() -> None:
    # 300 MiB growing 1 MiB per minute after a start-up jump from 100 MiB.
    samples = [(float(t), 100.0 + t) for t in range(0, 120, 5)]
    samples += [(float(t), 300.0 + t / 60) for t in range(120, 600, 5)]
    assert rss_slope_per_10min(samples, 120) == pytest.approx(10.0)
    assert (rss_slope_per_10min(samples, 0) or 0) > 100  # the start-up would dominate
    assert rss_slope_per_10min([(130.0, 1.0), (135.0, 2.0)], 120) is None


def test_pooled_slope_fits_one_slope_with_an_intercept_per_life() -> None:
    flat_high = [(float(t), 400.0) for t in range(120, 360, 5)]
    flat_low = [(float(t), 200.0) for t in range(120, 360, 5)]
    # Lives of the same flat RSS at different levels: no growth, whatever their order.
    assert pooled_rss_slope_per_10min([flat_high, flat_low], 120) == pytest.approx(0.0)
    growing = [(float(t), 250.0 + t / 120) for t in range(120, 360, 5)]  # 5 MiB / 10 min
    assert pooled_rss_slope_per_10min([growing], 120) == pytest.approx(5.0)
    # Equal spans: the pooled slope is the mean of the lives' slopes.
    assert pooled_rss_slope_per_10min([growing, flat_low], 120) == pytest.approx(2.5)
    short = [(130.0, 1.0), (135.0, 900.0)]  # too few samples: left out
    assert pooled_rss_slope_per_10min([growing, short], 120) == pytest.approx(5.0)
    assert pooled_rss_slope_per_10min([short, [(10.0, 5.0)]], 120) is None


def test_longest_pause_between_changes_and_the_window_ends() -> None:
    changes = [0.5, 1.0, 1.5, 9.5, 10.0]
    assert longest_pause(changes, 0.0, 12.0) == pytest.approx(8.0)
    assert longest_pause(changes, 2.0, 9.0) == pytest.approx(7.0)  # no change inside
    assert longest_pause(changes, 9.6, 20.0) == pytest.approx(10.0)  # the tail counts
    assert longest_pause([], 3.0, 3.0) == 0.0


def _result(**changes: object) -> SoakResult:
    r = SoakResult(
        run_id="soak20261202150000",
        command="PYTHONPATH=. .venv/bin/python -m bench.soak --minutes 4",
        started_utc="2026-12-02 15:00 UTC",
        minutes=4,
        rate=300,
        kill_every_s=60,
        warmup_s=120,
        code="abc1234 code 0123456789ab",
        code_after="abc1234 code 0123456789ab",
        load_s=240.0,
        sent=72_000,
        counted=72_000,
        exact=True,
        exact_after_s=1.25,
        longest_pause_s=23.4,
        log_dir="bench/data/logs/soak20261202150000",
    )
    grown = [(float(t), 200.0 + t / 600) for t in range(0, 300, 5)]
    r.lives = [
        Life("a", 0, 11, 0.0, "a0.log", lived_s=60.0, end="SIGKILL", ready_s=8.0, cpu_s=30.0),
        Life("b", 0, 12, 0.0, "b0.log", lived_s=300.0, end="stopped at the end", samples=grown),
    ]
    r.kills = [Kill(1, 60.0, "a0", "a1", pause_s=21.0)]
    for name, value in changes.items():
        setattr(r, name, value)
    return r


def test_markdown_of_an_exact_run() -> None:
    text = render_markdown(_result())
    assert text.startswith("## 2026-12-02 15:00 UTC: 4 min at 300/s, SIGKILL every 60 s (exact)")
    assert "```sh\nPYTHONPATH=. .venv/bin/python -m bench.soak --minutes 4\n```" in text
    assert "| events sent (acknowledged) | 72,000 (0 tokens) |" in text
    assert "| lost | 0 |" in text and "| duplicates counted | 0 |" in text
    assert "yes, 1.2 s after the last acknowledgement" in text
    assert "| 1 | 1:00 | a0 | a1 | – | 21.0 |" in text
    assert "| b0 | 5:00 | stopped at the end | 200.2 | 200.5 | 200.5 | 36 | +1.0 | 0 |" in text
    assert "| a0 | 1:00 | SIGKILL | – | – | – | 0 | – | 50 |" in text
    assert "RSS slope, all lives pooled | +1.0 MiB / 10 min (36 samples" in text
    assert "kept for analysis" not in text and "changed during the run" not in text


def test_markdown_of_a_failed_run_says_what_was_wrong_and_kept() -> None:
    text = render_markdown(
        _result(
            exact=False,
            counted=71_990,
            wrong=["total 2026-W49: tokens, calls 1, 2 != 3, 4"],
            unexpected_exits=["b1 exited with 1"],
            kept=True,
            code_after="abc1234+dirty code ffffffffffff",
        )
    )
    assert "(**NOT EXACT**, **a worker exited on its own**)" in text
    assert "| lost | 10 |" in text
    assert "  - total 2026-W49: tokens, calls 1, 2 != 3, 4" in text
    assert "--cleanup soak20261202150000" in text
    assert "**changed during the run**" in text
    assert not _result(exact=False).passed and not _result(errors=["x"]).passed
    assert _result().passed
    assert _result(counted=72_005).duplicates == 5


def test_results_file_gets_a_header_once(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "SOAK.md"
    append_markdown(out, "## one\n")
    append_markdown(out, "## two\n")
    text = out.read_text()
    assert text.startswith(SOAK_HEADER.rstrip("\n"))
    assert text.count("# Soak runs") == 1
    assert text.index("## one") < text.index("## two")
    assert text.endswith("## two\n")


def test_command_line_names_the_stack_without_passwords() -> None:
    env = {
        "TOKENBOARD_KAFKA_BOOTSTRAP": "127.0.0.1:19092",
        "TOKENBOARD_REDIS_URL": "redis://user:s3cret@127.0.0.1:16379/0",
        "TOKENBOARD_API_KEYS": "k",
    }
    line = command_line(["--minutes", "4", "--out", "a b.md"], env)
    assert line == (
        "TOKENBOARD_KAFKA_BOOTSTRAP=127.0.0.1:19092 "
        "TOKENBOARD_REDIS_URL='redis://user:***@127.0.0.1:16379/0' "
        "PYTHONPATH=. .venv/bin/python -m bench.soak --minutes 4 --out 'a b.md'"
    )
    assert "s3cret" not in line
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
