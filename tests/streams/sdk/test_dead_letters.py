"""The pure half of reading dead letters: --since, reason codes, the JSON shape, the table."""

from __future__ import annotations

import pytest

from aggregations.errors import InvalidInput
from streams.cli.views import render_dead_letters
from streams.sdk.dead_letters import (
    REASONS,
    DeadLetter,
    DeadLetterPage,
    check_reason,
    format_time,
    parse_since,
)

NOW = 1_795_010_587_250  # 2026-11-18T...Z


@pytest.mark.parametrize(
    ("text", "back_ms"),
    [("90s", 90_000), ("15m", 900_000), ("2h", 7_200_000), ("1d12h", 129_600_000),
     ("7d", 604_800_000), ("1w", 604_800_000), (" 2H ", 7_200_000)],
)  # fmt: skip
def test_since_as_a_duration_counts_back_from_now(text: str, back_ms: int) -> None:
    """Durations in s, m, h, d, w, combined, any case."""
    assert parse_since(text, NOW) == NOW - back_ms


def test_since_as_a_time_is_utc_unless_it_says_otherwise() -> None:
    """RFC 3339 with Z or an offset; a bare date or a time without offset is UTC."""
    assert parse_since("2026-11-18T14:00:00Z", NOW) == 1_795_010_400_000
    assert parse_since("2026-11-18T15:00:00+01:00", NOW) == 1_795_010_400_000
    assert parse_since("2026-11-18T14:00:00", NOW) == 1_795_010_400_000
    assert parse_since("2026-11-18", NOW) == 1_794_960_000_000


@pytest.mark.parametrize("text", ["yesterday", "10", "-1h", "1h-", "2026-13-01", ""])
def test_anything_else_is_refused_with_the_accepted_forms(text: str) -> None:
    """One error naming both accepted forms."""
    with pytest.raises(InvalidInput, match="a duration such as 90s"):
        parse_since(text, NOW)


def test_reason_codes_are_the_rejection_reasons() -> None:
    """A known reason or none passes; anything else lists the known ones."""
    assert "too_old" in REASONS and "bad_json" in REASONS
    assert check_reason("too_old") == "too_old" and check_reason(None) is None
    with pytest.raises(InvalidInput, match=r"unknown reason 'old'.*too_old"):
        check_reason("old")


def letter(offset: int, reason: str = "bad_json", value: bytes = b"{broken") -> DeadLetter:
    """A dead letter of partition 1."""
    return DeadLetter(NOW + offset, reason, f"detail {offset}", f"tb.usage/1/{offset}",
                      f"k{offset}", value, 1, offset)  # fmt: skip


def test_a_dead_letter_as_json() -> None:
    """Time as RFC 3339 with ms, the value as text (invalid UTF-8 replaced) and its size."""
    body = letter(0, value=b"\xff" + b"x" * 2000).as_dict()
    assert body["time"] == format_time(NOW) == "2026-11-18T14:03:07.250Z"
    assert (body["source"], body["key"], body["reason"]) == ("tb.usage/1/0", "k0", "bad_json")
    assert body["value"] == "\ufffd" + "x" * 1023 and body["value_bytes"] == 2001


def test_the_table_shows_time_reason_source_detail_and_an_excerpt() -> None:
    """Newest last, one line each, long values cut with an ellipsis; repeats are counted."""
    long = b'{"event_id": "e1",\n "model": "' + b"m" * 100 + b'"}'
    page = DeadLetterPage("tb.dead-letter", [letter(1), letter(2, "too_old", long)], 2, 1)
    head, blank, header, first, second = render_dead_letters(page).splitlines()
    assert head == "tb.dead-letter · 2 of 2 dead letters, newest last · 1 repeated copy left out"
    assert blank == "" and header.split() == ["time", "reason", "source", "detail", "value"]
    assert first.split()[:3] == ["2026-11-18T14:03:07Z", "bad_json", "tb.usage/1/1"]
    assert first.endswith("{broken")
    assert "too_old" in second and second.endswith("…")
    assert '{"event_id": "e1", "model": "mmm' in second
    empty = DeadLetterPage("tb.dead-letter")
    assert render_dead_letters(empty) == "tb.dead-letter · 0 of 0 dead letters, newest last"
