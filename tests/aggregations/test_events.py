"""Usage event schema: validation reasons, the wire format, and the HTTP batch decoder."""

from __future__ import annotations

import contextlib
import json
import pickle
from datetime import datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregations.events import (
    DEFAULT_LIMITS,
    MAX_TS_MS,
    MIN_TS_MS,
    InvalidEvent,
    Limits,
    UsageEvent,
    decode_batch,
    decode_event,
    decode_fields,
    encode_event,
    encoded_size,
    event_from_mapping,
    parse_timestamp,
)


def ms(text: str) -> int:
    """Epoch ms of an ISO timestamp, computed independently of the code under test."""
    return int(datetime.fromisoformat(text).timestamp()) * 1000


NOW_MS = ms("2026-11-18T12:00:00+00:00")
DAY_MS = 86_400_000
DROP = object()


def make_event(**overrides: object) -> dict[str, object]:
    """A valid event as a decoded JSON object; an override of DROP removes the field."""
    event: dict[str, object] = {
        "event_id": "evt-1",
        "ts": NOW_MS - 60_000,
        "model": "deepseek/deepseek-v4-flash",
        "prompt_tokens": 1200,
        "completion_tokens": 300,
    }
    for key, value in overrides.items():
        if value is DROP:
            event.pop(key, None)
        else:
            event[key] = value
    return event


def decode(obj: object, **kwargs: Any) -> UsageEvent:
    """decode_event of the object's JSON, at NOW_MS unless told otherwise."""
    kwargs.setdefault("now_ms", NOW_MS)
    return decode_event(orjson.dumps(obj), **kwargs)


def cloudevent(data: object = DROP, **attributes: object) -> dict[str, object]:
    """A structured-mode CloudEvent around ``data`` (none when DROP)."""
    envelope: dict[str, object] = {
        "specversion": "1.0",
        "type": "ai.tokenboard.usage",
        "source": "/gateway/eu-1",
        "id": "ce-1",
        "time": "2026-11-18T11:00:00Z",
        "datacontenttype": "application/json",
    }
    if data is not DROP:
        envelope["data"] = data
    envelope.update(attributes)
    return envelope


VALID_CASES: list[tuple[str, dict[str, object], dict[str, object]]] = [
    ("minimal", make_event(), {"ts_ms": NOW_MS - 60_000, "reasoning_tokens": 0, "calls": 1}),
    (
        "rfc3339 Z",
        make_event(ts="2026-11-16T00:00:00Z"),
        {"ts_ms": ms("2026-11-16T00:00:00+00:00")},
    ),
    (
        "rfc3339 offset",
        make_event(ts="2026-11-16T02:00:00+02:00"),
        {"ts_ms": ms("2026-11-16T00:00:00+00:00")},
    ),
    (
        "rfc3339 negative offset",
        make_event(ts="2026-11-15T19:30:00-04:30"),
        {"ts_ms": ms("2026-11-16T00:00:00+00:00")},
    ),
    (
        "rfc3339 fraction truncated",
        make_event(ts="2026-11-16T00:00:00.123987Z"),
        {"ts_ms": ms("2026-11-16T00:00:00+00:00") + 123},
    ),
    (
        "rfc3339 short fraction",
        make_event(ts="2026-11-16t00:00:00.5z"),
        {"ts_ms": ms("2026-11-16T00:00:00+00:00") + 500},
    ),
    (
        "rfc3339 space separator",
        make_event(ts="2026-11-16 00:00:01Z"),
        {"ts_ms": ms("2026-11-16T00:00:01+00:00")},
    ),
    ("float ts truncated", make_event(ts=1_794_787_200_000.9), {"ts_ms": 1_794_787_200_000}),
    ("lowercase country", make_event(country="cn"), {"country": "CN"}),
    (
        "all optional fields",
        make_event(
            reasoning_tokens=100,
            cached_tokens=1000,
            calls=3,
            vendor="DeepSeek",
            country="CN",
            app="chat",
            region="eu-west-1",
        ),
        {"reasoning_tokens": 100, "cached_tokens": 1000, "calls": 3, "app": "chat"},
    ),
    (
        "nulls mean absent",
        make_event(reasoning_tokens=None, calls=None, vendor=None, country=None, app=None),
        {"reasoning_tokens": 0, "calls": 1, "vendor": None, "country": None},
    ),
    ("empty strings mean absent", make_event(vendor="", country="", region=""), {"vendor": None}),
    ("unknown fields ignored", make_event(total_tokens=1500, extra={"a": [1]}), {"tokens": 1500}),
    ("zero tokens", make_event(prompt_tokens=0, completion_tokens=0), {"tokens": 0}),
    (
        "exactly the per-call limit",
        make_event(prompt_tokens=9_000_000, completion_tokens=1_000_000),
        {"tokens": 10_000_000},
    ),
    (
        "rollup over the per-call limit",
        make_event(prompt_tokens=15_000_000, completion_tokens=5_000_000, calls=2),
        {"tokens": 20_000_000, "calls": 2},
    ),
    ("a day ahead is allowed", make_event(ts=NOW_MS + DAY_MS), {"ts_ms": NOW_MS + DAY_MS}),
]


@pytest.mark.parametrize(
    ("obj", "expected"), [c[1:] for c in VALID_CASES], ids=[c[0] for c in VALID_CASES]
)
def test_valid_event(obj: dict[str, object], expected: dict[str, object]) -> None:
    """Valid inputs decode to an event with the expected normalised fields."""
    event = decode(obj)
    assert event.event_id == obj["event_id"]
    assert event.model == obj["model"]
    for name, value in expected.items():
        assert getattr(event, name) == value, name


INVALID_CASES: list[tuple[str, dict[str, object], str, str | None]] = [
    ("no event_id", make_event(event_id=DROP), "missing_field", "event_id"),
    ("empty event_id", make_event(event_id=""), "missing_field", "event_id"),
    ("null event_id", make_event(event_id=None), "missing_field", "event_id"),
    ("int event_id", make_event(event_id=123), "wrong_type", "event_id"),
    ("long event_id", make_event(event_id="x" * 257), "oversized", "event_id"),
    ("no model", make_event(model=DROP), "missing_field", "model"),
    ("empty model", make_event(model=""), "missing_field", "model"),
    ("list model", make_event(model=["a"]), "wrong_type", "model"),
    ("long model", make_event(model="m" * 257), "oversized", "model"),
    ("no ts", make_event(ts=DROP), "missing_field", "ts"),
    ("bool ts", make_event(ts=True), "bad_timestamp", "ts"),
    ("object ts", make_event(ts={"s": 1}), "bad_timestamp", "ts"),
    ("prose ts", make_event(ts="yesterday"), "bad_timestamp", "ts"),
    ("date-only ts", make_event(ts="2026-11-16"), "bad_timestamp", "ts"),
    ("ts without offset", make_event(ts="2026-11-16T00:00:00"), "bad_timestamp", "ts"),
    ("ts on February 30th", make_event(ts="2026-02-30T00:00:00Z"), "bad_timestamp", "ts"),
    ("ts hour 24", make_event(ts="2026-11-16T24:00:00Z"), "bad_timestamp", "ts"),
    ("ts offset hour 24", make_event(ts="2026-11-16T00:00:00+24:00"), "bad_timestamp", "ts"),
    ("ts non-ASCII digits", make_event(ts="٢٠٢٦-11-16T00:00:00Z"), "bad_timestamp", "ts"),
    ("ts in epoch seconds", make_event(ts=1_794_787_200), "bad_timestamp", "ts"),
    ("negative ts", make_event(ts=-1), "bad_timestamp", "ts"),
    ("ts after year 9999", make_event(ts=MAX_TS_MS + 1), "bad_timestamp", "ts"),
    ("ts too far ahead", make_event(ts=NOW_MS + DAY_MS + 1), "future_timestamp", "ts"),
    ("no prompt_tokens", make_event(prompt_tokens=DROP), "missing_field", "prompt_tokens"),
    (
        "no completion_tokens",
        make_event(completion_tokens=None),
        "missing_field",
        "completion_tokens",
    ),
    ("string count", make_event(prompt_tokens="12"), "wrong_type", "prompt_tokens"),
    ("float count", make_event(prompt_tokens=12.0), "wrong_type", "prompt_tokens"),
    ("bool count", make_event(completion_tokens=True), "wrong_type", "completion_tokens"),
    ("negative count", make_event(prompt_tokens=-1), "negative_count", "prompt_tokens"),
    ("negative reasoning", make_event(reasoning_tokens=-5), "negative_count", "reasoning_tokens"),
    ("string cached", make_event(cached_tokens="x"), "wrong_type", "cached_tokens"),
    (
        "huge count",
        make_event(completion_tokens=10**16, calls=10**10),
        "absurd_count",
        "completion_tokens",
    ),
    ("over the per-call limit", make_event(prompt_tokens=10_000_001), "absurd_count", None),
    (
        "rollup over the per-call limit",
        make_event(prompt_tokens=20_000_000, completion_tokens=1, calls=2),
        "absurd_count",
        None,
    ),
    (
        "absurd reasoning",
        make_event(reasoning_tokens=10_000_001),
        "absurd_count",
        "reasoning_tokens",
    ),
    ("absurd cached", make_event(cached_tokens=10_000_001), "absurd_count", "cached_tokens"),
    ("zero calls", make_event(calls=0), "negative_count", "calls"),
    ("negative calls", make_event(calls=-3), "negative_count", "calls"),
    ("fractional calls", make_event(calls=1.5), "wrong_type", "calls"),
    ("three-letter country", make_event(country="USA"), "bad_country", "country"),
    ("digit in country", make_event(country="U1"), "bad_country", "country"),
    ("non-ASCII country", make_event(country="ÜS"), "bad_country", "country"),
    ("int country", make_event(country=1), "wrong_type", "country"),
    ("int vendor", make_event(vendor=5), "wrong_type", "vendor"),
    ("object app", make_event(app={}), "wrong_type", "app"),
    ("long region", make_event(region="r" * 257), "oversized", "region"),
    ("cloudevent without data", cloudevent(), "bad_cloudevent", "data"),
    ("cloudevent null data", cloudevent(None), "bad_cloudevent", "data"),
    ("cloudevent string data", cloudevent("{}"), "bad_cloudevent", "data"),
    ("cloudevent base64 data", cloudevent(data_base64="e30="), "bad_cloudevent", "data"),
    (
        "cloudevent xml data",
        cloudevent(make_event(), datacontenttype="application/xml"),
        "bad_cloudevent",
        "data",
    ),
    (
        "cloudevent int specversion",
        cloudevent(make_event(), specversion=1),
        "bad_cloudevent",
        "data",
    ),
    ("cloudevent int id", cloudevent(make_event(event_id=DROP), id=7), "bad_cloudevent", "data"),
    (
        "cloudevent with a bad event",
        cloudevent(make_event(prompt_tokens=-1)),
        "negative_count",
        "prompt_tokens",
    ),
]


@pytest.mark.parametrize(
    ("obj", "reason", "field"), [c[1:] for c in INVALID_CASES], ids=[c[0] for c in INVALID_CASES]
)
def test_invalid_event(obj: dict[str, object], reason: str, field: str | None) -> None:
    """Each invalid input is rejected with its exact reason and field."""
    with pytest.raises(InvalidEvent) as caught:
        decode(obj)
    assert (caught.value.reason, caught.value.field) == (reason, field)
    assert str(caught.value) == f"{reason}: {caught.value.detail}"


RAW_CASES: list[tuple[str, bytes, str]] = [
    ("invalid UTF-8 byte", b"\xff\xfe", "bad_utf8"),
    ("invalid UTF-8 in a string", b'{"event_id": "\xc3\x28"}', "bad_utf8"),
    ("UTF-8 encoded surrogate", b'{"model": "\xed\xa0\x80"}', "bad_utf8"),
    ("empty", b"", "bad_json"),
    ("truncated", b'{"event_id": "a"', "bad_json"),
    ("NaN literal", b'{"ts": NaN}', "bad_json"),
    ("two documents", b"{}\n{}", "bad_json"),
    ("byte order mark", b"\xef\xbb\xbf{}", "bad_json"),
    ("lone escaped surrogate", b'{"model": "\\ud800"}', "bad_json"),
    ("nesting past the parser's limit", b"[" * 5000, "bad_json"),
    ("array", b"[]", "not_object"),
    ("number", b"42", "not_object"),
    ("string", b'"event"', "not_object"),
    ("null", b"null", "not_object"),
    ("oversized", orjson.dumps(make_event(pad="x" * DEFAULT_LIMITS.max_event_bytes)), "oversized"),
    ("oversized bad UTF-8", b"\xff" * (DEFAULT_LIMITS.max_event_bytes + 1), "oversized"),
]


@pytest.mark.parametrize(
    ("raw", "reason"), [c[1:] for c in RAW_CASES], ids=[c[0] for c in RAW_CASES]
)
def test_undecodable_bytes(raw: bytes, reason: str) -> None:
    """Bytes that are not a JSON object are rejected for the first failing check."""
    with pytest.raises(InvalidEvent) as caught:
        decode_event(raw, now_ms=NOW_MS)
    assert caught.value.reason == reason
    assert caught.value.field is None


def test_bad_utf8_reports_the_byte_offset() -> None:
    """The bad_utf8 detail points at the first offending byte."""
    with pytest.raises(InvalidEvent, match=r"^bad_utf8: invalid UTF-8 at byte 14$"):
        decode_event(b'{"event_id": "\xff"}', now_ms=NOW_MS)


def test_deep_nesting_in_an_ignored_field_is_accepted() -> None:
    """Nesting the parser accepts does not disturb validation of the known fields."""
    raw = orjson.dumps(make_event())[:-1] + b',"x":' + b"[" * 1000 + b"]" * 1000 + b"}"
    assert decode_event(raw, now_ms=NOW_MS).event_id == "evt-1"


def test_too_old_is_counted_back_from_the_watermark() -> None:
    """Retention is measured from the watermark, not the wall clock, so replays work."""
    limits = DEFAULT_LIMITS
    old = make_event(ts=NOW_MS - limits.retention_ms - 1)
    with pytest.raises(InvalidEvent) as caught:
        decode(old, watermark_ms=NOW_MS)
    assert (caught.value.reason, caught.value.field) == ("too_old", "ts")
    assert decode(old, watermark_ms=NOW_MS - 1).ts_ms == old["ts"]
    assert decode(old).ts_ms == old["ts"]


def test_custom_limits_apply() -> None:
    """Limits passed in replace the defaults."""
    limits = Limits(max_tokens_per_call=100, max_event_bytes=50, max_future_ms=0)
    with pytest.raises(InvalidEvent, match=r"^absurd_count"):
        event_from_mapping(
            make_event(prompt_tokens=101, completion_tokens=0), now_ms=NOW_MS, limits=limits
        )
    with pytest.raises(InvalidEvent, match=r"^future_timestamp"):
        event_from_mapping(
            make_event(ts=NOW_MS + 1, prompt_tokens=1, completion_tokens=1),
            now_ms=NOW_MS,
            limits=limits,
        )
    with pytest.raises(InvalidEvent, match=r"^oversized"):
        decode_event(orjson.dumps(make_event()), now_ms=NOW_MS, limits=limits)


def test_huge_integer_literals_are_absurd_not_wrong_type() -> None:
    """Integer literals beyond 64 bits (parsed as floats by orjson) count as absurd/negative."""
    base = orjson.dumps(make_event(prompt_tokens=DROP))[:-1]
    with pytest.raises(InvalidEvent, match=r"^absurd_count"):
        decode_event(base + b',"prompt_tokens":123456789012345678901234567890}', now_ms=NOW_MS)
    with pytest.raises(InvalidEvent, match=r"^negative_count"):
        decode_event(base + b',"prompt_tokens":-123456789012345678901234567890}', now_ms=NOW_MS)


def test_cloudevent_envelope_supplies_id_and_time() -> None:
    """A CloudEvent's id and time stand in for a missing event_id and ts."""
    envelope = cloudevent(make_event(event_id=DROP, ts=DROP))
    event = decode(envelope)
    assert event.event_id == "ce-1"
    assert event.ts_ms == ms("2026-11-18T11:00:00+00:00")
    assert event.model == "deepseek/deepseek-v4-flash"


def test_cloudevent_data_fields_win_over_the_envelope() -> None:
    """The usage event's own event_id and ts take precedence over the CloudEvent's."""
    event = decode(cloudevent(make_event(), datacontenttype=None))
    assert (event.event_id, event.ts_ms) == ("evt-1", NOW_MS - 60_000)


def test_tokens_is_prompt_plus_completion() -> None:
    """Reasoning and cached tokens are already inside completion and prompt tokens."""
    event = UsageEvent("e", NOW_MS, "m", 100, 50, reasoning_tokens=30, cached_tokens=80)
    assert event.tokens == 150


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_794_787_200_000, 1_794_787_200_000),
        (1_794_787_200_000.75, 1_794_787_200_000),
        ("2026-11-16T00:00:00Z", 1_794_787_200_000),
        ("2026-11-16T01:00:00.9999+01:00", 1_794_787_200_999),
        ("2016-12-31T23:59:60Z", ms("2017-01-01T00:00:00+00:00")),
        (MIN_TS_MS, MIN_TS_MS),
        ("9999-12-31T23:59:59.999Z", MAX_TS_MS),
    ],
)
def test_parse_timestamp(value: object, expected: int) -> None:
    """Epoch ms, floats and RFC 3339 strings all become epoch ms."""
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        None,
        float("nan"),
        float("inf"),
        -float("inf"),
        1e300,
        "",
        "now",
        "2026-11-16T00:00Z",
        [1],
    ],
)
def test_parse_timestamp_rejects(value: object) -> None:
    """Bools, non-finite numbers, out-of-range values and other strings are bad_timestamp."""
    with pytest.raises(InvalidEvent) as caught:
        parse_timestamp(value)
    assert caught.value.reason == "bad_timestamp"


def test_encode_omits_defaults() -> None:
    """The wire format leaves out absent fields, zero extra counts and a single call."""
    event = UsageEvent("e", NOW_MS, "m", 1, 2, country="US")
    assert orjson.loads(encode_event(event)) == {
        "event_id": "e",
        "ts": NOW_MS,
        "model": "m",
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "country": "US",
    }


def test_invalid_event_pickles_and_serialises() -> None:
    """Rejections survive pickling (worker processes) and render as a dict (gateway)."""
    exc = InvalidEvent("missing_field", "'model' is required", "model")
    assert str(exc) == "missing_field: 'model' is required"
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.reason, copy.detail, copy.field, str(copy)) == (
        exc.reason,
        exc.detail,
        exc.field,
        str(exc),
    )
    assert exc.as_dict() == {
        "reason": "missing_field",
        "detail": "'model' is required",
        "field": "model",
    }


# --- property tests ---------------------------------------------------------------------

names = st.text(min_size=1, max_size=256)
optional_names = st.none() | names
valid_events = st.integers(1, 1000).flatmap(
    lambda calls: st.builds(
        UsageEvent,
        event_id=names,
        ts_ms=st.integers(MIN_TS_MS, NOW_MS + DAY_MS),
        model=names,
        prompt_tokens=st.integers(0, 5_000_000 * calls),
        completion_tokens=st.integers(0, 5_000_000 * calls),
        reasoning_tokens=st.integers(0, 5_000_000 * calls),
        cached_tokens=st.integers(0, 5_000_000 * calls),
        calls=st.just(calls),
        vendor=optional_names,
        country=st.none() | st.from_regex(r"[A-Z]{2}", fullmatch=True),
        app=optional_names,
        region=optional_names,
    )
)


@given(valid_events)
def test_round_trip(event: UsageEvent) -> None:
    """decode_event(encode_event(e)) == e for every valid event."""
    assert decode_event(encode_event(event), now_ms=NOW_MS) == event


@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_invalid_event(raw: bytes) -> None:
    """Any byte string decodes to an event or raises InvalidEvent, nothing else."""
    with contextlib.suppress(InvalidEvent):
        decode_event(raw, now_ms=NOW_MS, watermark_ms=NOW_MS)
    assert all(isinstance(r, UsageEvent | InvalidEvent) for r in decode_batch(raw, now_ms=NOW_MS))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
field_names = st.sampled_from(
    [
        "event_id",
        "ts",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "reasoning_tokens",
        "cached_tokens",
        "calls",
        "vendor",
        "country",
        "app",
        "region",
        "specversion",
        "data",
        "id",
        "time",
        "datacontenttype",
        "data_base64",
    ]
)
# Mostly-valid events with a few fields replaced by arbitrary values reach every check.
mutated_events = st.builds(
    lambda base, changes: {**base, **changes},
    st.just(make_event()) | st.just(cloudevent(make_event())),
    st.dictionaries(field_names, json_values, max_size=4),
)


@given(mutated_events | st.dictionaries(field_names | st.text(max_size=8), json_values))
def test_arbitrary_mappings_raise_only_invalid_event(obj: dict[str, object]) -> None:
    """event_from_mapping accepts or raises InvalidEvent for any JSON-like object."""
    try:
        event = event_from_mapping(obj, now_ms=NOW_MS, watermark_ms=NOW_MS)
    except InvalidEvent:
        return
    assert decode_event(encode_event(event), now_ms=NOW_MS) == event


@given(json_values | mutated_events)
def test_arbitrary_json_text_raises_only_invalid_event(value: object) -> None:
    """JSON text of any value (NaN, Infinity and huge integers included) never crashes decoding."""
    raw = json.dumps(value).encode()
    with contextlib.suppress(InvalidEvent):
        decode_event(raw, now_ms=NOW_MS)


# --- decode_batch -----------------------------------------------------------------------


def reasons(results: list[UsageEvent | InvalidEvent]) -> list[str]:
    """Each result as "ok" or its rejection reason."""
    return ["ok" if isinstance(r, UsageEvent) else r.reason for r in results]


def test_batch_single_object() -> None:
    """A body holding one object gives one result."""
    results = decode_batch(orjson.dumps(make_event()), now_ms=NOW_MS)
    assert reasons(results) == ["ok"]


def test_batch_array_keeps_order_and_isolates_bad_events() -> None:
    """An array yields one result per element, in order, a bad one not spoiling the rest."""
    body = orjson.dumps(
        [make_event(event_id="a"), make_event(model=DROP), 7, make_event(event_id="c")]
    )
    results = decode_batch(body, now_ms=NOW_MS)
    assert reasons(results) == ["ok", "missing_field", "not_object", "ok"]
    assert [r.event_id for r in results if isinstance(r, UsageEvent)] == ["a", "c"]


def test_batch_ndjson_with_blank_lines_and_bad_lines() -> None:
    """NDJSON yields one result per non-blank line; bad lines are rejected on their own."""
    lines = [
        orjson.dumps(make_event(event_id="a")),
        b"",
        b"   ",
        b'{"event_id": "b"',
        orjson.dumps(make_event(event_id="c", calls=0)),
        b"[1]",
        b"\xff",
        orjson.dumps(make_event(event_id="d")) + b"\r",
    ]
    results = decode_batch(b"\n".join(lines) + b"\n", now_ms=NOW_MS)
    assert reasons(results) == ["ok", "bad_json", "negative_count", "not_object", "bad_utf8", "ok"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "bad_json"),
        (b"  \n ", "bad_json"),
        (b"not json at all", "bad_json"),
        (b"{broken\n{also broken", "bad_json"),
        (b'{"a": "\xff"}', "bad_utf8"),
        (b'"just a string"', "not_object"),
    ],
)
def test_batch_unparseable_body_is_one_rejection(body: bytes, reason: str) -> None:
    """A body that is none of object, array or NDJSON yields a single rejection."""
    assert reasons(decode_batch(body, now_ms=NOW_MS)) == [reason]


def test_batch_oversized_events() -> None:
    """The event size limit applies to a single-object body and to array elements."""
    limits = Limits(max_event_bytes=400)
    big = make_event(event_id="big", pad="x" * 400)
    assert reasons(decode_batch(orjson.dumps(big), now_ms=NOW_MS, limits=limits)) == ["oversized"]
    body = orjson.dumps([make_event(event_id="a"), big, make_event(event_id="b")])
    assert reasons(decode_batch(body, now_ms=NOW_MS, limits=limits)) == ["ok", "oversized", "ok"]


def test_batch_verdict_of_a_deeply_nested_element_does_not_depend_on_the_batch() -> None:
    """An element nested deeper than orjson writes is measured, not rejected for its depth."""
    limits = Limits(max_event_bytes=4000)
    deep = b"[" * 300 + b'"leaf"' + b"]" * 300  # deeper than orjson can write
    event = orjson.dumps(make_event(event_id="deep", extra=0)).replace(b"0}", deep + b"}")
    padding = [orjson.dumps(make_event(event_id=f"p{i}", pad="x" * 200)) for i in range(30)]
    alone = decode_batch(b"[" + event + b"]", now_ms=NOW_MS, limits=limits)
    big = b"[" + b",".join([event, *padding]) + b"]"
    assert len(big) > limits.max_event_bytes
    assert reasons(alone) == reasons(decode_batch(big, now_ms=NOW_MS, limits=limits))[:1] == ["ok"]


def test_batch_broken_one_line_body_is_bad_json_whatever_its_size() -> None:
    """A one-line body that is not JSON is bad_json as a whole, even above the event limit."""
    limits = Limits(max_event_bytes=400)
    for count in (1, 10):
        body = b"[" + b",".join([orjson.dumps(make_event(pad="x" * 100))] * count) + b",NaN]"
        assert reasons(decode_batch(body, now_ms=NOW_MS, limits=limits)) == ["bad_json"]


def test_batch_empty_array() -> None:
    """An empty array is a valid, empty batch."""
    assert decode_batch(b"[]", now_ms=NOW_MS) == []


def test_batch_of_cloudevents() -> None:
    """A JSON array of CloudEvents (the batched content mode) is unwrapped element by element."""
    body = orjson.dumps([cloudevent(make_event(event_id=DROP)), cloudevent(7)])
    results = decode_batch(body, now_ms=NOW_MS)
    assert reasons(results) == ["ok", "bad_cloudevent"]
    assert isinstance(results[0], UsageEvent) and results[0].event_id == "ce-1"


writable_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False,
    allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)  # fmt: skip


@given(writable_json_values, st.integers(0, 400))
def test_encoded_size_equals_orjson_length_at_any_depth(value: Any, depth: int) -> None:
    """encoded_size is the compact JSON length, also past the depth orjson can write."""
    wrapped = value
    for _ in range(depth):
        wrapped = {"k": [wrapped]}
    inner = len(orjson.dumps(value))
    assert encoded_size(wrapped) == inner + depth * len(b'{"k":[]}')


def outcome(
    decode: Any, raw: bytes, watermark_ms: int | None, limits: Limits = DEFAULT_LIMITS
) -> object:
    """What a decoder makes of ``raw``: its counted fields, or the rejection in full."""
    try:
        result = decode(raw, now_ms=NOW_MS, watermark_ms=watermark_ms, limits=limits)
    except InvalidEvent as exc:
        return ("rejected", exc.reason, exc.field, str(exc))
    if isinstance(result, UsageEvent):
        e = result
        return (e.event_id, e.ts_ms, e.model, e.prompt_tokens, e.completion_tokens, e.calls,
                e.vendor, e.country, e.app, e.cached_tokens)  # fmt: skip
    return result


SMALL_LIMITS = Limits(max_event_bytes=300, max_id_length=20, max_name_length=30)
watermarks = st.none() | st.integers(MIN_TS_MS, NOW_MS + 30 * DAY_MS)


@given(
    valid_events | mutated_events.map(json.dumps) | st.binary(max_size=80),
    watermarks,
    st.sampled_from([DEFAULT_LIMITS, SMALL_LIMITS]),
)
def test_decode_fields_agrees_with_decode_event(
    source: object, watermark_ms: int | None, limits: Limits
) -> None:
    """The hot loop's fast path gives exactly decode_event's values and verdicts."""
    if isinstance(source, UsageEvent):
        raw = encode_event(source)
    elif isinstance(source, str):
        raw = source.encode()
    else:
        assert isinstance(source, bytes)
        raw = source
    fast = outcome(decode_fields, raw, watermark_ms, limits)
    assert fast == outcome(decode_event, raw, watermark_ms, limits)


@pytest.mark.parametrize(
    "event",
    [
        make_event(),
        make_event(vendor="", country="", app="", region=""),
        make_event(vendor="v", country="cn", calls=3, reasoning_tokens=5, cached_tokens=6),
        make_event(country="C1"),
        make_event(ts="2026-11-18T11:00:00Z"),
        make_event(prompt_tokens=True),
        make_event(calls=0),
        make_event(event_id=""),
        make_event(app=7),
        make_event(app="support-bot"),
        make_event(app="a" * 256),
        make_event(app="a" * 257),
        make_event(app=None),
        cloudevent(make_event(app="support-bot")),
        cloudevent(make_event()),
    ],
)
def test_decode_fields_agrees_on_edge_shapes(event: dict[str, object]) -> None:
    """Empty optional strings, lowercase countries, RFC 3339 times, bools, CloudEvents."""
    raw = orjson.dumps(event)
    assert outcome(decode_fields, raw, None) == outcome(decode_event, raw, None)


@pytest.mark.parametrize(
    ("app", "counted"),
    [("support-bot", "support-bot"), ("", None), (None, None), (":a:b", ":a:b"), ("é", "é")],
)
def test_decode_fields_counts_the_app(app: str | None, counted: str | None) -> None:
    """The ninth counted field is the app; "" and null mean no app (the unranked member
    aggregations.totals.NO_APP, which no event can name)."""
    fields = decode_fields(orjson.dumps(make_event(app=app)), now_ms=NOW_MS)
    assert fields[8] == counted
    assert decode_fields(orjson.dumps(make_event()), now_ms=NOW_MS)[8] is None


def test_timestamp_errors_read_as_dates_and_durations() -> None:
    """A future or too-old timestamp is explained with ISO dates and days or hours, not raw
    milliseconds."""
    ahead = NOW_MS + 3 * 86_400_000 + 2 * 3_600_000
    with pytest.raises(InvalidEvent) as future:
        decode_event(orjson.dumps(make_event(ts=ahead)), now_ms=NOW_MS)
    assert "'ts' 2026-11-21T14:00:00Z is 3 d 2 h ahead of the clock (2026-11-18T12:00:00Z)" in str(
        future.value
    )
    assert str(ahead) not in str(future.value)
    old = NOW_MS - 40 * 7 * 86_400_000
    with pytest.raises(InvalidEvent) as too_old:
        decode_event(orjson.dumps(make_event(ts=old)), now_ms=NOW_MS, watermark_ms=NOW_MS)
    assert "more than 182 d before the pipeline's event time" in str(too_old.value)


def test_an_ndjson_syntax_error_names_the_bodys_line() -> None:
    """A broken fourth line says "line 4 of the body", not the parser's "line 1 column 1"."""
    good = orjson.dumps(make_event())
    body = b"\n".join([good, good, b"", b"{broken"]) + b"\n"
    results = decode_batch(body, now_ms=NOW_MS)
    assert isinstance(results[-1], InvalidEvent) and results[-1].reason == "bad_json"
    assert results[-1].detail.startswith("line 4 of the body: ")
