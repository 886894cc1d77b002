"""decode_many: a whole batch decoded natively, with exactly decode_fields' verdicts.

The contract is equality with decode_fields record by record: the same counted fields (types
included: ``True`` is not ``1``), or a rejection with the same reason, detail and field. The
property tests mix valid records, records built to hit every reject reason, arbitrary bytes
and mutated events; the example tests pin the traps of decoding many records in one parse
(record boundaries, whitespace, duplicate keys, numbers, UTF-8, lengths in code points).
Strategies are deterministic: the clock is the fixed NOW_MS of test_events.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable, Sequence
from typing import Any, get_args

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregations import batch_decode
from aggregations.batch_decode import RUN_RECORDS, decode_many
from aggregations.events import (
    DEFAULT_LIMITS,
    MAX_COUNT,
    MAX_TS_MS,
    MIN_TS_MS,
    CountedFields,
    InvalidEvent,
    Limits,
    RejectReason,
    decode_fields,
    encode_event,
)
from tests.aggregations.test_events import (
    DAY_MS,
    DROP,
    NOW_MS,
    SMALL_LIMITS,
    cloudevent,
    make_event,
    mutated_events,
    valid_events,
    watermarks,
)

RETENTION_MS = DEFAULT_LIMITS.retention_ms
TIGHT_LIMITS = Limits(max_tokens_per_call=1000, max_future_ms=0, retention_ms=DAY_MS)
ALL_LIMITS = [DEFAULT_LIMITS, SMALL_LIMITS, TIGHT_LIMITS]


def verdict(result: object) -> object:
    """A result as comparable data: the rejection in full, or the fields with their types."""
    if isinstance(result, InvalidEvent):
        return ("rejected", result.reason, result.detail, result.field, str(result))
    assert isinstance(result, tuple)
    return ("counted", tuple((type(value).__name__, value) for value in result))


def one_by_one(
    values: Sequence[bytes | None], watermark_ms: int | None, limits: Limits, now_ms: int
) -> list[object]:
    """What decode_fields says of each record, as stage 1 calls it."""
    out: list[object] = []
    for value in values:
        try:
            out.append(
                verdict(
                    decode_fields(
                        value or b"", now_ms=now_ms, watermark_ms=watermark_ms, limits=limits
                    )
                )
            )
        except InvalidEvent as exc:
            out.append(verdict(exc))
    return out


def assert_agrees(
    values: Sequence[bytes | None],
    watermark_ms: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    now_ms: int = NOW_MS,
) -> list[CountedFields | InvalidEvent]:
    """decode_many(values) equals decode_fields record by record; returns decode_many's."""
    results = decode_many(values, now_ms=now_ms, watermark_ms=watermark_ms, limits=limits)
    assert len(results) == len(values)
    assert [verdict(r) for r in results] == one_by_one(values, watermark_ms, limits, now_ms)
    return results


def dumps(obj: object) -> bytes:
    """Compact JSON, as producers send it (integers past 64 bits too)."""
    try:
        return orjson.dumps(obj)
    except TypeError:  # orjson writes no integer past 64 bits
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def counted(result: CountedFields | InvalidEvent) -> CountedFields:
    """The counted fields of an accepted record (fails the test on a rejection)."""
    assert not isinstance(result, InvalidEvent), result
    return result


def reason(result: CountedFields | InvalidEvent) -> str:
    """The rejection reason of a result, "ok" for an accepted record."""
    return result.reason if isinstance(result, InvalidEvent) else "ok"


GOOD = dumps(make_event())
GOOD2 = dumps(make_event(event_id="evt-2"))

# --- strategies -------------------------------------------------------------------------

ascii_names = st.text(string.ascii_letters + string.digits + "-_/.:", min_size=1, max_size=24)
recent_ts = st.integers(NOW_MS - 7 * DAY_MS, NOW_MS)
optional_fields = st.fixed_dictionaries(
    {},
    optional={
        "calls": st.integers(1, 4),
        "reasoning_tokens": st.integers(0, 1000),
        "cached_tokens": st.integers(0, 1000),
        "vendor": st.sampled_from(["DeepSeek", "", None]),
        "country": st.sampled_from(["US", "cn", "", None]),
        "app": st.sampled_from(["chat", "", None]),
        "region": st.sampled_from(["eu-west-1", None]),
    },
)


@st.composite
def base_events(draw: st.DrawFn) -> dict[str, object]:
    """A valid event (under the default limits, at NOW_MS, with watermark NOW_MS), its keys
    in any order."""
    event: dict[str, object] = {
        "event_id": draw(ascii_names),
        "ts": draw(recent_ts),
        "model": draw(ascii_names),
        "prompt_tokens": draw(st.integers(0, 5_000_000)),
        "completion_tokens": draw(st.integers(0, 5_000_000)),
        **draw(optional_fields),
    }
    return dict(draw(st.permutations(list(event.items()))))


def json_escaped(obj: object) -> bytes:
    """JSON with non-ASCII escaped (\\u00e9, surrogate pairs for astral characters)."""
    return json.dumps(obj).encode()


def json_spaced(obj: object) -> bytes:
    """Pretty-printed JSON: newlines and indentation inside the record."""
    return json.dumps(obj, indent=1, ensure_ascii=False).encode()


encoders: st.SearchStrategy[Callable[[object], bytes]] = st.sampled_from(
    [dumps, json_escaped, json_spaced]
)


def with_fields(event: dict[str, object], **fields: object) -> dict[str, object]:
    """``event`` with fields replaced (DROP removes one)."""
    out = dict(event)
    for key, value in fields.items():
        if value is DROP:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def encode(event: dict[str, object], **fields: object) -> bytes:
    """``event`` with fields replaced, as compact JSON."""
    return dumps(with_fields(event, **fields))


base_raw = st.builds(lambda event, encoder: encoder(event), base_events(), encoders)


@st.composite
def realistic_raw(draw: st.DrawFn) -> bytes:
    """The benchmark dataset's shape: hex id, epoch-ms ts, catalog-like model, optional
    upper-case country."""
    event: dict[str, object] = {
        "event_id": f"m-{draw(st.integers(0, 2**96 - 1)):024x}",
        "ts": draw(recent_ts),
        "model": draw(st.sampled_from(["deepseek/deepseek-v4-flash", "qwen/qwen3-max", "x/y"])),
        "prompt_tokens": draw(st.integers(50, 3050)),
        "completion_tokens": draw(st.integers(10, 810)),
    }
    if draw(st.booleans()):
        event["country"] = draw(st.sampled_from(["US", "CN", "DE"]))
    return dumps(event)


# Valid records that the batch's fast path cannot take, so decode_fields must.
slow_but_valid = st.one_of(
    st.builds(lambda e: encode(e, ts="2026-11-18T11:00:00.5+01:00"), base_events()),
    st.builds(lambda e, ts: encode(e, ts=ts + 0.75), base_events(), recent_ts),
    st.builds(lambda e: encode(e, total_tokens=5, extra={"a": [1]}), base_events()),
    st.builds(lambda e: dumps(cloudevent(with_fields(e, event_id=DROP, ts=DROP))), base_events()),
    st.builds(lambda e: encode(e, calls=None, reasoning_tokens=None), base_events()),
    st.builds(
        lambda raw, lead, tail: lead + raw + tail,
        st.builds(dumps, base_events()),
        st.sampled_from([b"", b" ", b"\n", b"\t\r\n"]),
        st.sampled_from([b"", b" ", b"\n", b"\r\n"]),
    ),
    st.builds(lambda raw: raw[:-1] + b',"event_id":"dup","model":"m2"}', base_raw),
)

BAD_UTF8 = [
    b"\xff",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\xc0\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\xe2\x82",
]
BAD_LITERALS = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"01",
    b"+1",
    b"1.",
    b".5",
    b"tru",
    b"nul",
    b"0x10",
    b"'x'",
    b"1e999",
    b'"\\ud800"',
    b'"\\udc00x"',
    b'"a\x01"',
    b'"\\x"',
]
COUNT_FIELDS = ["prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens", "calls"]
TEXT_FIELDS = ["event_id", "model", "vendor", "app", "region"]


def insert(raw: bytes, at: int, chunk: bytes) -> bytes:
    """``chunk`` inserted into ``raw`` at position ``at`` (modulo its length)."""
    at %= len(raw) + 1
    return raw[:at] + chunk + raw[at:]


def with_literal(event: dict[str, object], field: str, literal: bytes) -> bytes:
    """``event`` as JSON with ``field``'s value replaced by raw ``literal`` bytes."""
    return dumps(with_fields(event, **{field: "@@"})).replace(b'"@@"', literal)


def missing(event: dict[str, object], field: str, how: str) -> bytes:
    """A required field dropped, null, or (for the two strings) empty."""
    if how == "empty" and field in ("event_id", "model"):
        return encode(event, **{field: ""})
    return encode(event, **{field: None if how == "null" else DROP})


def bad_envelope(event: dict[str, object], kind: int) -> bytes:
    """A structured-mode CloudEvent that is wrong in one of several ways."""
    envelopes = [
        cloudevent(),
        cloudevent(None),
        cloudevent("{}"),
        cloudevent([event]),
        cloudevent(event, data_base64="e30="),
        cloudevent(event, datacontenttype="application/xml"),
        cloudevent(event, datacontenttype=5),
        cloudevent(event, specversion=1),
        cloudevent(event, specversion=None),
        cloudevent(with_fields(event, event_id=DROP), id=7),
    ]
    return dumps(envelopes[kind % len(envelopes)])


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
nested = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
too_long_text = st.builds(
    lambda char, n: char * n, st.characters(exclude_categories=("Cs",)), st.integers(257, 300)
)


def replaced(event: dict[str, object], field: str, value: object) -> bytes:
    """``event`` with one field replaced, as compact JSON."""
    return encode(event, **{field: value})


def one_field(fields: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """A valid event with one of ``fields`` set to one of ``values``."""
    return st.builds(replaced, base_events(), st.sampled_from(fields), values)


compact_raw = st.builds(dumps, base_events())
truncated = st.builds(lambda raw, at: raw[: at % len(raw)], compact_raw, st.integers(0, 10**4))
TRAILING_JUNK = [b" x", b"}", b",", b"{}", b"[]", b"\x0c", b"\x00", b"]", b"\n{}", b"," + GOOD]
with_junk = st.builds(lambda raw, junk: raw + junk, base_raw, st.sampled_from(TRAILING_JUNK))
junk_first = st.builds(
    lambda junk, raw: junk + raw, st.sampled_from([b"x", b"\x0c", b"\xef\xbb\xbf", b","]), base_raw
)
literals = st.builds(
    with_literal,
    base_events(),
    st.sampled_from(["ts", *COUNT_FIELDS, "model", "unknown"]),
    st.sampled_from(BAD_LITERALS),
)
BLANK_OR_BRACE = [b"", b" ", b"\n", b"{", b"}"]
trailing_comma = st.builds(lambda raw: raw[:-1] + b",}", compact_raw)
BAD_TS = ["", "yesterday", "2026-11-16", "2026-11-16T00:00:00", "2026-02-30T00:00:00Z",
          "2026-11-16T24:00:00Z", "٢٠٢٦-11-16T00:00:00Z", [1], {"s": 1}]  # fmt: skip
bad_ts = st.one_of(
    st.booleans(),
    st.integers(-(2**62), MIN_TS_MS - 1),
    st.integers(MAX_TS_MS + 1, 2**80),
    st.floats(0, MIN_TS_MS - 1),
    st.floats(MAX_TS_MS + 2, 1e300),
    st.sampled_from(BAD_TS),
)
future_ts = st.integers(NOW_MS + DAY_MS + 1, MAX_TS_MS) | st.sampled_from(
    ["2030-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z"]
)
limit_bytes = DEFAULT_LIMITS.max_event_bytes
padded = st.builds(
    lambda e, n: encode(e, pad="x" * n), base_events(), st.integers(limit_bytes, limit_bytes + 99)
)
not_a_code = st.text(min_size=1, max_size=4).filter(
    lambda c: not (len(c) == 2 and c.isascii() and c.isalpha())
)
wrong_for_text = (
    st.integers(-5, 5) | st.booleans() | st.just([]) | st.just({"a": 1}) | st.floats(-9, 9)
)
wrong_for_count = (
    st.booleans() | st.text(max_size=5) | st.just([1]) | st.just({}) | st.floats(-1e6, 1e6)
)

#: Records decode_fields rejects with each reason at NOW_MS, watermark NOW_MS, default limits.
REASONS: dict[str, st.SearchStrategy[bytes]] = {
    "bad_utf8": st.builds(insert, base_raw, st.integers(0, 10**4), st.sampled_from(BAD_UTF8)),
    "bad_json": st.one_of(
        truncated, with_junk, junk_first, literals, trailing_comma, st.sampled_from(BLANK_OR_BRACE)
    ),
    "not_object": st.one_of(scalars, st.lists(nested, max_size=4)).map(json_escaped),
    "missing_field": st.builds(
        missing,
        base_events(),
        st.sampled_from(["event_id", "model", "ts", "prompt_tokens", "completion_tokens"]),
        st.sampled_from(["drop", "null", "empty"]),
    ),
    "wrong_type": one_field([*TEXT_FIELDS, "country"], wrong_for_text)
    | one_field(COUNT_FIELDS, wrong_for_count),
    "negative_count": one_field(
        COUNT_FIELDS, st.integers(-(10**15), -1) | st.integers(-(2**80), -(2**64))
    )
    | one_field(["calls"], st.just(0)),
    "absurd_count": one_field(COUNT_FIELDS, st.integers(MAX_COUNT + 1, 2**80))
    | one_field(COUNT_FIELDS[:4], st.integers(10_000_001, MAX_COUNT)).map(
        lambda raw: raw[:-1] + b',"calls":1}'
    ),
    "bad_timestamp": one_field(["ts"], bad_ts),
    "future_timestamp": one_field(["ts"], future_ts),
    "too_old": one_field(["ts"], st.integers(MIN_TS_MS, NOW_MS - RETENTION_MS - 1)),
    "oversized": padded | one_field(TEXT_FIELDS, too_long_text),
    "bad_country": one_field(["country"], not_a_code),
    "bad_cloudevent": st.builds(bad_envelope, base_events(), st.integers(0, 100)),
}

records: st.SearchStrategy[bytes | None] = st.one_of(
    base_raw,
    realistic_raw(),
    slow_but_valid,
    *REASONS.values(),
    st.binary(max_size=80),
    mutated_events.map(json_escaped),
    valid_events.map(encode_event),
    st.none(),
)


# --- property tests ---------------------------------------------------------------------


def test_the_strategies_name_every_reject_reason() -> None:
    """There is a strategy for each RejectReason (a new reason needs one here)."""
    assert set(REASONS) == set(get_args(RejectReason))


@pytest.mark.parametrize("expected", sorted(REASONS))
@given(data=st.data())
def test_each_strategy_produces_its_reason(expected: str, data: st.DataObject) -> None:
    """Every record a reason's strategy draws is rejected with that reason, by both."""
    raw = data.draw(REASONS[expected])
    results = assert_agrees([raw], NOW_MS)
    assert reason(results[0]) == expected


@given(base_raw | realistic_raw())
def test_valid_strategies_are_valid(raw: bytes) -> None:
    """The valid records are accepted (so the mixes below hold both kinds)."""
    assert reason(assert_agrees([raw], NOW_MS)[0]) == "ok"


@given(st.lists(records, max_size=40), watermarks, st.sampled_from(ALL_LIMITS))
def test_decode_many_agrees_with_decode_fields(
    values: list[bytes | None], watermark_ms: int | None, limits: Limits
) -> None:
    """Random batches mixing valid and invalid records: the same verdicts, in order."""
    assert_agrees(values, watermark_ms, limits)


LONG_BATCH = [
    dumps(
        {
            "event_id": f"m-{random.Random(i).getrandbits(96):024x}",
            "ts": NOW_MS - 3 * DAY_MS + i * 1000,
            "model": ["deepseek/deepseek-v4-flash", "qwen/qwen3-max"][i % 2],
            "prompt_tokens": 50 + i % 3000,
            "completion_tokens": 10 + i % 800,
            **({"country": "US"} if i % 4 == 0 else {}),
        }
    )
    for i in range(3 * RUN_RECORDS + 1)
]


@given(st.lists(st.tuples(st.integers(0, len(LONG_BATCH) - 1), records), max_size=8), watermarks)
def test_bad_records_anywhere_in_a_long_batch(
    replacements: list[tuple[int, bytes | None]], watermark_ms: int | None
) -> None:
    """Records of every kind at any position of a batch longer than several runs."""
    values: list[bytes | None] = list(LONG_BATCH)
    for at, record in replacements:
        values[at] = record
    assert_agrees(values, watermark_ms)


@given(st.lists(st.sampled_from([*BAD_LITERALS, b"{", b"}", b"[", b"]", b",", b'"', b"\\"])))
def test_fragments_of_json_across_records(fragments: list[bytes]) -> None:
    """Records that are pieces of JSON, which only parse when joined, stay apart."""
    values = [b'{"event_id":"a' + f + b'"}' for f in fragments] + list(fragments)
    assert_agrees([*values, *LONG_BATCH[:3]], NOW_MS)


# --- record boundaries ------------------------------------------------------------------


def test_a_split_and_a_merge_that_keep_the_element_count() -> None:
    """Two records that form one object when joined, and one record holding two objects:
    the joined array has as many elements as records, but they are not the records."""
    first = b'{"event_id":"x","model":"}'  # starts with '{', ends with '}', alone bad JSON
    second = b'{","ts":' + str(NOW_MS).encode() + b',"prompt_tokens":1,"completion_tokens":1}'
    split = GOOD + b"," + GOOD2
    joined = b"[" + b",".join([first, second, split]) + b"]"
    assert len(orjson.loads(joined)) == 3  # what a count check would be fooled by
    results = assert_agrees([GOOD, first, second, split, GOOD2])
    assert [reason(r) for r in results] == ["ok", "bad_json", "bad_json", "bad_json", "ok"]


def test_a_record_with_leading_spaces_that_ends_inside_the_next() -> None:
    """A span as long as its record is not its record when the record starts with spaces:
    here the first element takes the next record's first bytes and is as long as the first
    record, and only the second element's length gives the shift away."""
    first = (
        b'   {"event_id":"x","ts":%d,"prompt_tokens":1,"completion_tokens":1,"model":"a' % NOW_MS
    )
    second = b'"},' + GOOD2
    parsed = orjson.loads(b"[" + b",".join([first, second, GOOD]) + b"]")
    assert len(parsed) == 3 and parsed[0]["model"] == "a,"
    results = assert_agrees([first, second, GOOD])
    assert [reason(r) for r in results] == ["bad_json", "bad_json", "ok"]


@pytest.mark.parametrize(
    "record",
    [
        GOOD + GOOD2,
        GOOD + b" " + GOOD2,
        GOOD + b"\n" + GOOD2,
        GOOD + b"," + GOOD2,
        GOOD + b",",
        b"," + GOOD,
        GOOD + b"]",
        b"[" + GOOD,
        b"[" + GOOD + b"]",
        GOOD + b"x",
        GOOD + b"\x00",
        GOOD[:-1],
        GOOD[1:],
        b'{"event_id":"a',
        b'"}',
        b'{"model":[1',
        b"]",
        b",",
        b"",
    ],
    ids=repr,
)
def test_records_that_are_not_one_json_object(record: bytes) -> None:
    """Several values, trailing garbage, pieces of an object: rejected alone, and their
    neighbours (valid, on both sides) unharmed, at every position of a run."""
    for at in (0, 1, RUN_RECORDS - 1, RUN_RECORDS, len(LONG_BATCH) - 1):
        values: list[bytes | None] = list(LONG_BATCH)
        values[at] = record
        results = assert_agrees(values)
        assert reason(results[at]) != "ok"
        assert all(reason(r) == "ok" for i, r in enumerate(results) if i != at)


@pytest.mark.parametrize(
    ("lead", "tail"),
    [(b" ", b""), (b"", b"\n"), (b"\t", b"\r\n"), (b"\n\n", b"  "), (b"\r", b"\t")],
)
def test_json_whitespace_around_a_record_is_accepted(lead: bytes, tail: bytes) -> None:
    """JSON's four whitespace bytes around a record are valid (orjson accepts them)."""
    values = [lead + GOOD + tail, GOOD2, lead + GOOD2 + tail] * 3
    assert all(reason(r) == "ok" for r in assert_agrees(values))


@pytest.mark.parametrize("space", [b"\x0c", b"\x0b", b"\xc2\xa0", b"\x00"])
def test_other_whitespace_around_a_record_is_bad_json(space: bytes) -> None:
    """Form feed, vertical tab, no-break space and NUL are not JSON whitespace."""
    results = assert_agrees([GOOD + space, space + GOOD, GOOD2])
    assert [reason(r) for r in results] == ["bad_json", "bad_json", "ok"]


def test_whitespace_inside_a_record() -> None:
    """Pretty-printed records decode like compact ones."""
    results = assert_agrees([json_spaced(make_event()), GOOD2, json_spaced(make_event(calls=2))])
    assert [reason(r) for r in results] == ["ok", "ok", "ok"]


def test_a_stream_of_newline_terminated_records(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every record ending in a newline (some producers add one): all accepted, in runs
    (the whitespace is stripped for msgspec once it shows), none by decode_fields."""
    values = [raw + b"\n" for raw in LONG_BATCH]
    calls = Calls(monkeypatch)
    results = decode_many(values, now_ms=NOW_MS, watermark_ms=None, limits=DEFAULT_LIMITS)
    assert (calls.slow, calls.parsed) == (0, len(values) + RUN_RECORDS)
    monkeypatch.undo()
    assert [verdict(r) for r in results] == one_by_one(values, None, DEFAULT_LIMITS, NOW_MS)


def test_stripped_records_are_still_judged_as_they_came() -> None:
    """Once records are stripped for msgspec, decode_fields still sees the original bytes:
    whitespace-only records stay bad_json, a form feed stays bad_json."""
    values: list[bytes | None] = [raw + b"\r\n" for raw in LONG_BATCH[:40]]
    values[3] = b" \n "
    values[7] = b"\n" + GOOD + b"\x0c\n"
    values[11] = b"\t" + dumps(make_event(prompt_tokens=-1)) + b"\n"
    values[12] = None
    results = assert_agrees(values)
    assert [reason(results[i]) for i in (3, 7, 11, 12, 13)] == [
        "bad_json", "bad_json", "negative_count", "bad_json", "ok",
    ]  # fmt: skip


# --- values -----------------------------------------------------------------------------


def test_none_and_empty_values() -> None:
    """A record without a value is decoded as b"" (bad_json), like an empty one."""
    results = assert_agrees([None, GOOD, b"", None, b" ", GOOD2, None])
    assert [reason(r) for r in results] == ["bad_json", "ok", "bad_json", "bad_json",
                                            "bad_json", "ok", "bad_json"]  # fmt: skip


def test_only_none_values() -> None:
    """A batch of tombstones."""
    assert [reason(r) for r in assert_agrees([None] * 5)] == ["bad_json"] * 5


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        ('"event_id":"a"', '"event_id":"b"', "ok"),
        ('"event_id":7', '"event_id":"b"', "ok"),
        ('"event_id":"a"', '"event_id":7', "wrong_type"),
        ('"prompt_tokens":-1', '"prompt_tokens":5', "ok"),
        ('"prompt_tokens":5', '"prompt_tokens":-1', "negative_count"),
        ('"country":"us"', '"country":"ZZZ"', "bad_country"),
        ('"country":"ZZZ"', '"country":"us"', "ok"),
        ('"vendor":"v"', '"vendor":null', "ok"),
        ('"ts":"soon"', '"ts":' + str(NOW_MS), "ok"),
        ('"specversion":"1.0"', '"x":1', "bad_cloudevent"),
    ],
)
def test_duplicate_keys_keep_the_last(first: str, last: str, expected: str) -> None:
    """orjson keeps the last of duplicate keys; the batch must see the same object."""
    raw = GOOD[:-1] + f",{first},{last}}}".encode()
    results = assert_agrees([raw, GOOD2, raw])
    assert reason(results[0]) == expected
    if expected == "ok" and "event_id" in first:
        assert counted(results[0])[0] == "b"


def test_escaped_key_names() -> None:
    """A key spelt with escapes is the same key to both parsers."""
    raw = GOOD.replace(b'"event_id"', b'"event\\u005fid"').replace(b'"ts"', b'"\\u0074s"')
    assert counted(assert_agrees([raw, GOOD])[0])[:2] == ("evt-1", NOW_MS - 60_000)


@pytest.mark.parametrize("field", ["ts", *COUNT_FIELDS])
@pytest.mark.parametrize("value", [True, False])
def test_bools_are_not_integers(field: str, value: bool) -> None:
    """JSON true/false never count as 1/0."""
    results = assert_agrees([encode(make_event(), **{field: value}), GOOD])
    assert reason(results[0]) in ("bad_timestamp", "wrong_type")


@pytest.mark.parametrize(
    ("field", "literal", "expected"),
    [
        ("ts", str(NOW_MS) + ".9", "ok"),  # truncated to the millisecond
        ("ts", "1.79e12", "ok"),
        ("ts", "-0.0", "bad_timestamp"),
        ("prompt_tokens", "5.0", "wrong_type"),
        ("prompt_tokens", "1e3", "wrong_type"),
        ("prompt_tokens", "1E3", "wrong_type"),
        ("prompt_tokens", "-0", "ok"),
        ("calls", "1.0", "wrong_type"),
        ("cached_tokens", "0.5", "wrong_type"),
    ],
)
def test_floats_where_integers_are_expected(field: str, literal: str, expected: str) -> None:
    """A float ts is truncated; a float count is wrong_type, even when integral."""
    raw = with_literal(make_event(), field, literal.encode())
    assert reason(assert_agrees([raw, GOOD])[0]) == expected


@pytest.mark.parametrize(
    ("field", "literal"),
    [
        (field, literal)
        for field in ["ts", *COUNT_FIELDS]
        for literal in [
            str(2**63 - 1),
            str(2**63),
            str(2**64 - 1),
            str(2**64),
            str(10**30),
            str(-(10**30)),
            "1" + "0" * 400,
            "1" + "0" * 5000,
        ]
    ],
)
def test_big_integers(field: str, literal: str) -> None:
    """Past 64 bits orjson reads floats (absurd, negative, or infinity: bad_json); msgspec
    reads ints; the verdict is decode_fields' either way."""
    raw = with_literal(make_event(), field, literal.encode())
    assert reason(assert_agrees([raw, GOOD, raw])[0]) != "ok"


def test_counts_at_the_bounds() -> None:
    """MAX_COUNT, the per-call budget and the rollup budget, exactly and one past."""
    limits = Limits(max_tokens_per_call=1000)
    cases = [
        {"prompt_tokens": 600, "completion_tokens": 400},
        {"prompt_tokens": 600, "completion_tokens": 401},
        {"prompt_tokens": 1500, "completion_tokens": 500, "calls": 2},
        {"prompt_tokens": 1500, "completion_tokens": 501, "calls": 2},
        {"reasoning_tokens": 1000},
        {"reasoning_tokens": 1001},
        {"reasoning_tokens": 1500, "calls": 2},
        {"cached_tokens": 2001, "calls": 2},
        {"calls": MAX_COUNT},
        {"calls": MAX_COUNT + 1},
        {"calls": 0},
    ]
    values = [encode(make_event(prompt_tokens=0, completion_tokens=0), **c) for c in cases]
    results = assert_agrees(values, limits=limits)
    assert [reason(r) for r in results] == [
        "ok", "absurd_count", "ok", "absurd_count", "ok", "absurd_count", "ok",
        "absurd_count", "ok", "absurd_count", "negative_count",
    ]  # fmt: skip


def test_timestamps_at_the_bounds() -> None:
    """The clock's horizon, the retention horizon and the calendar's ends, exactly and one
    past."""
    horizon = NOW_MS + DEFAULT_LIMITS.max_future_ms
    oldest = NOW_MS - RETENTION_MS
    cases = [horizon, horizon + 1, oldest, oldest - 1, MIN_TS_MS, MIN_TS_MS - 1, MAX_TS_MS + 1]
    values = [encode(make_event(), ts=ts) for ts in cases]
    assert [reason(r) for r in assert_agrees(values, watermark_ms=NOW_MS)] == [
        "ok", "future_timestamp", "ok", "too_old", "too_old", "bad_timestamp", "bad_timestamp",
    ]  # fmt: skip
    assert [reason(r) for r in assert_agrees(values, watermark_ms=None)] == [
        "ok", "future_timestamp", "ok", "ok", "ok", "bad_timestamp", "bad_timestamp",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "literal", [b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"1e999", b"-1e999"]
)
@pytest.mark.parametrize("field", ["ts", "prompt_tokens", "calls", "unknown"])
def test_nan_and_infinity(literal: bytes, field: str) -> None:
    """Not JSON, in a known field or an ignored one."""
    raw = with_literal(make_event(), field, literal)
    assert [reason(r) for r in assert_agrees([raw, GOOD])] == ["bad_json", "ok"]


# --- text -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe",
        b'{"event_id":"\xc3\x28"}',
        GOOD.replace(b"evt-1", b"evt-\xff"),
        GOOD.replace(b"deepseek", b"deep\xed\xa0\x80seek"),  # an encoded surrogate
        GOOD.replace(b"deepseek", b"deep\xc0\x80seek"),  # an overlong NUL
        GOOD.replace(b'"event_id"', b'"event_\xffid"'),  # in a key
        GOOD[:-1] + b',"extra":"\xff"}',  # in an ignored field
        GOOD[:-1] + b',"\xff":1}',  # in an ignored key
        GOOD.replace(b"deepseek", b"deepseek\xe2\x82"),  # a truncated sequence
        GOOD + b"\xff",
    ],
    ids=repr,
)
def test_invalid_utf8(raw: bytes) -> None:
    """Invalid UTF-8 anywhere is bad_utf8, and does not spoil the records around it."""
    results = assert_agrees([GOOD, raw, GOOD2, raw, *LONG_BATCH[:5]])
    assert reason(results[1]) == "bad_utf8"
    assert reason(results[2]) == "ok"


@pytest.mark.parametrize(
    ("escape", "expected"),
    [
        (b"\\ud800", "bad_json"),
        (b"\\udc00", "bad_json"),
        (b"\\ud800x", "bad_json"),
        (b"\\udc00\\ud800", "bad_json"),
        (b"\\ud83d\\ude00", "ok"),
        (b"\\u0000", "ok"),
        (b'\\u00e9\\/\\\\\\"\\b\\f\\n\\r\\t', "ok"),
        (b"\\x41", "bad_json"),
        (b"\x01", "bad_json"),
        (b"\x1f", "bad_json"),
        (b"\x7f", "ok"),
    ],
)
def test_string_escapes_and_control_characters(escape: bytes, expected: str) -> None:
    """Escapes decode alike; lone surrogates and raw control characters are bad_json."""
    raw = GOOD.replace(b"evt-1", b"evt-" + escape)
    results = assert_agrees([raw, GOOD2])
    assert reason(results[0]) == expected
    if expected == "ok":
        assert counted(results[0])[0] == orjson.loads(raw)["event_id"]


@pytest.mark.parametrize("char", ["x", "é", "€", "😀", "\\u00e9", "\\ud83d\\ude00"])
@pytest.mark.parametrize("field", ["event_id", "model", "vendor", "app", "region"])
def test_lengths_are_code_points(char: str, field: str) -> None:
    """The length limits count characters (as len() does), not bytes or UTF-16 units."""
    limit = DEFAULT_LIMITS.max_id_length if field == "event_id" else 256
    values = [
        GOOD.replace(b"evt-1", b"evt-1")[:-1] + f',"{field}":"{char * n}"}}'.encode()
        for n in (limit - 1, limit, limit + 1)
    ]
    results = assert_agrees(values)
    assert [reason(r) for r in results] == ["ok", "ok", "oversized"]


@pytest.mark.parametrize(
    ("country", "expected"),
    [
        ("US", "US"),
        ("cn", "CN"),
        ("dE", "DE"),
        ("", None),
        (None, None),
        ("U", "bad_country"),
        ("USA", "bad_country"),
        ("U1", "bad_country"),
        ("ÜS", "bad_country"),
        ("ǅS", "bad_country"),
        ("ﬀ", "bad_country"),
        (" U", "bad_country"),
    ],
)
def test_country_codes(country: str | None, expected: str | None) -> None:
    """Two ASCII letters, upper-cased; empty or null is none; anything else is rejected."""
    result = assert_agrees([dumps(make_event(country=country)), GOOD])[0]
    if expected == "bad_country":
        assert reason(result) == "bad_country"
    else:
        assert counted(result)[7] == expected


def test_empty_optional_strings_mean_absent() -> None:
    """vendor, country and app "" are None in the counted fields; region "" is accepted."""
    raw = dumps(make_event(vendor="", app="", region="", country=""))
    assert counted(assert_agrees([raw, GOOD])[0])[6:] == (None, None, None, 0)


def test_cached_tokens_are_counted() -> None:
    """cached_tokens is the tenth counted field (it prices the event), 0 when absent, on the
    batch path as on decode_fields'."""
    values = [dumps(make_event(event_id=f"c{i}", cached_tokens=i)) for i in range(20)]
    results = assert_agrees([*values, GOOD])
    assert [counted(r)[9] for r in results] == [*range(20), 0]


def test_the_app_is_counted() -> None:
    """The app is the ninth counted field, on the batch path as on decode_fields'."""
    values = [dumps(make_event(event_id=f"a{i}", app=f"app-{i}")) for i in range(20)]
    results = assert_agrees([*values, dumps(make_event(app=None))])
    assert [counted(r)[8] for r in results] == [*(f"app-{i}" for i in range(20)), None]


def test_cloudevents_take_the_slow_path() -> None:
    """A CloudEvent envelope (any object with "specversion") is unwrapped by decode_fields."""
    values = [
        dumps(cloudevent(make_event(event_id=DROP, ts=DROP))),
        dumps(cloudevent(make_event())),
        dumps(cloudevent(7)),
        dumps(make_event(specversion=None)),
        GOOD,
    ]
    results = assert_agrees(values)
    assert [reason(r) for r in results] == ["ok", "ok", "bad_cloudevent", "bad_cloudevent", "ok"]
    assert counted(results[0])[0] == "ce-1"


# --- sizes and limits -------------------------------------------------------------------


def test_oversized_records_are_judged_before_parsing() -> None:
    """A record over max_event_bytes is oversized whatever it holds, exactly at the limit
    it is decoded."""
    limits = Limits(max_event_bytes=200)
    exact = GOOD[:-1] + b',"pad":"' + b"x" * (200 - len(GOOD) - 9) + b'"}'
    assert len(exact) == 200
    over = exact[:-2] + b'x"}'
    values = [exact, over, b"\xff" * 201, b"[" * 201, over[:-1], GOOD]
    results = assert_agrees(values, limits=limits)
    assert [reason(r) for r in results] == [
        "ok", "oversized", "oversized", "oversized", "bad_json", "ok",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "limits",
    [
        Limits(max_id_length=0),
        Limits(max_name_length=0),
        Limits(max_id_length=-1, max_name_length=-1),
        Limits(max_tokens_per_call=0),
        Limits(max_tokens_per_call=-1),
        Limits(max_tokens_per_call=10**20),
        Limits(max_future_ms=-DAY_MS),
        Limits(retention_ms=0),
        Limits(max_event_bytes=0),
    ],
    ids=repr,
)
def test_odd_limits(limits: Limits) -> None:
    """Limits at or past their sensible range give decode_fields' verdicts too."""
    values = [GOOD, GOOD2, dumps(make_event(reasoning_tokens=5, cached_tokens=0)), None]
    assert_agrees([*values, *LONG_BATCH[:20]], NOW_MS, limits)


def test_non_objects() -> None:
    """Arrays, numbers, strings, null and booleans are not_object."""
    values = [b"[]", b"[" + GOOD + b"]", b"1", b'"s"', b"null", b"true", b"1e999", b"-0"]
    assert [reason(r) for r in assert_agrees(values)] == ["not_object"] * 6 + ["bad_json"] + [
        "not_object"
    ]


# --- whole batches ----------------------------------------------------------------------


def test_empty_batch() -> None:
    """No records, no results."""
    assert decode_many([], now_ms=NOW_MS, watermark_ms=None, limits=DEFAULT_LIMITS) == []


def test_every_record_invalid(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch with nothing valid: every record gets its own verdict, from one
    decode_fields call, and runs shrink instead of failing at full length again and again."""
    bad = [
        b"{}",
        b"[]",
        b"\xff",
        b"",
        None,
        dumps(make_event(prompt_tokens=-1)),
        dumps(make_event(ts=NOW_MS + 2 * DAY_MS)),
        dumps(make_event(country="XYZ")),
        dumps(cloudevent()),
        GOOD + GOOD,
        b'{"event_id":"a',
    ]
    values = [bad[i % len(bad)] for i in range(3 * RUN_RECORDS + 7)]
    calls = Calls(monkeypatch)
    results = decode_many(values, now_ms=NOW_MS, watermark_ms=None, limits=DEFAULT_LIMITS)
    assert calls.slow == len(values)
    assert calls.parsed <= 2 * len(values)
    monkeypatch.undo()
    assert [verdict(r) for r in results] == one_by_one(values, None, DEFAULT_LIMITS, NOW_MS)
    assert all(reason(r) != "ok" for r in results)


def realistic_batch(count: int, seed: int) -> list[bytes]:
    """Events shaped like the benchmark dataset's (bench/dataset.py), over four weeks."""
    rng = random.Random(seed)
    models = [f"lab-{k % 40}/model-{k}" for k in range(500)]
    out = []
    for i in range(count):
        event: dict[str, object] = {
            "event_id": f"m-{rng.getrandbits(96):024x}",
            "ts": NOW_MS - 28 * DAY_MS + 28 * DAY_MS * i // count,
            "model": rng.choice(models),
            "prompt_tokens": 50 + int(rng.random() * 3000),
            "completion_tokens": 10 + int(rng.random() * 800),
        }
        if rng.random() < 0.25:
            event["country"] = rng.choice(["US", "CN", "DE", "FR", "GB"])
        out.append(dumps(event))
    return out


class Calls:
    """Counts decode_fields calls and the records handed to msgspec in runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.slow = 0
        self.parsed = 0

        def counting_decode_fields(raw: bytes, **kwargs: Any) -> CountedFields:
            self.slow += 1
            return decode_fields(raw, **kwargs)

        run = batch_decode._Batch._run

        def counting_run(batch: Any, start: int, end: int) -> tuple[int, int]:
            self.parsed += end - start
            return run(batch, start, end)

        monkeypatch.setattr(batch_decode, "decode_fields", counting_decode_fields)
        monkeypatch.setattr(batch_decode._Batch, "_run", counting_run)


def test_a_huge_valid_batch_never_takes_the_slow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """50,000 realistic events: all counted, each parsed once, none by decode_fields."""
    values = realistic_batch(50_000, seed=1)
    calls = Calls(monkeypatch)
    results = decode_many(values, now_ms=NOW_MS, watermark_ms=NOW_MS, limits=DEFAULT_LIMITS)
    assert (calls.slow, calls.parsed) == (0, len(values))
    monkeypatch.undo()
    assert [verdict(r) for r in results] == one_by_one(values, NOW_MS, DEFAULT_LIMITS, NOW_MS)


@pytest.mark.parametrize(
    "bad",
    [
        dumps(make_event(prompt_tokens=-1)),
        b'{"event_id":"a',
        b"\xff",
        GOOD + b"," + GOOD2,
        dumps(cloudevent(make_event())),
    ],
    ids=repr,
)
def test_one_bad_record_in_20000_costs_about_one_run(
    monkeypatch: pytest.MonkeyPatch, bad: bytes
) -> None:
    """The bad record is isolated from msgspec's error: the others stay in batch runs, and
    only a run's worth of records is parsed twice."""
    values = realistic_batch(20_000, seed=2)
    values[12_345] = bad
    calls = Calls(monkeypatch)
    results = decode_many(values, now_ms=NOW_MS, watermark_ms=None, limits=DEFAULT_LIMITS)
    assert calls.slow == 1
    assert calls.parsed <= len(values) + 2 * RUN_RECORDS
    monkeypatch.undo()
    assert [verdict(r) for r in results] == one_by_one(values, None, DEFAULT_LIMITS, NOW_MS)


def test_one_bad_record_per_thousand(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sparse bad records of all kinds: the same verdicts, and re-parsing stays bounded."""
    values: list[bytes | None] = list(realistic_batch(20_000, seed=3))
    kinds = [
        dumps(make_event(ts=True)),
        b"\xff",
        None,
        b"[]",
        b'{"event_id":"a","model":"}',
        GOOD + GOOD2,
        b" " + GOOD + b"\n",
        dumps(make_event(ts=NOW_MS + 2 * DAY_MS)),
    ]
    for n, at in enumerate(range(500, 20_000, 1000)):
        values[at] = kinds[n % len(kinds)]
    calls = Calls(monkeypatch)
    results = decode_many(values, now_ms=NOW_MS, watermark_ms=None, limits=DEFAULT_LIMITS)
    assert calls.parsed <= 2 * len(values)
    monkeypatch.undo()
    assert [verdict(r) for r in results] == one_by_one(values, None, DEFAULT_LIMITS, NOW_MS)


def test_a_tuple_of_values() -> None:
    """Any sequence of records will do (aiokafka gives lists; tests sometimes tuples)."""
    assert_agrees((*LONG_BATCH[:10], None, b"{}"))


def test_the_decoders_are_built_once_per_limits() -> None:
    """The Struct type is cached per Limits value, not rebuilt per batch."""
    first = batch_decode._codec(Limits(max_id_length=99))
    assert batch_decode._codec(Limits(max_id_length=99)) is first
    assert batch_decode._codec(Limits(max_id_length=98)) is not first
