"""Property-based fuzzing of bad input, from the decoder to Redis.

``tests/aggregations/test_events.py`` already proves that any bytes or JSON value make the
decoder return an event or raise :class:`InvalidEvent` and nothing else. This module adds what
was missing:

* the *precise* verdict: for every generated defect (wrong types, huge, negative and NaN
  numbers, deep nesting, bad UTF-8, oversized events and bodies, timestamps far in the past or
  future, broken CloudEvents, ...) the reason and the field to blame are the ones the defect
  calls for, whether the event comes alone, in a JSON array or on an NDJSON line;
* the ingest API end to end (aiohttp TestServer, real broker, real worker): each event of a
  fuzzed batch gets its own verdict (HTTP 4xx with the reason), the valid events of the same
  batch are accepted and counted, raw records sent past the gateway are dead-lettered with
  their reason, the totals in Redis stay exact and nothing crashes.

The expected verdicts come from how each case is built, not from the code under test.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import seed as hseed
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from aggregations.events import (
    MAX_COUNT,
    MAX_TS_MS,
    MIN_TS_MS,
    InvalidEvent,
    Limits,
    UsageEvent,
    decode_batch,
    decode_event,
)
from streams.sdk.producer import UsageProducer
from streams.settings import Settings
from streams.store.client import connect
from streams.store.keys import RedisKeys
from streams.topics import ensure_topics
from tests.integration.kafka_read import read_topic
from tests.integration.private_stack import (
    Expected,
    record_figures,
    running_gateway,
    wait_for_totals,
    wait_until,
)
from tests.integration.processes import WorkerProcess

T = TypeVar("T")
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
MAX_EVENT_BYTES = 8192
MAX_REQUEST_BYTES = 256 * 1024
PER_CALL = 10_000_000
COUNT_FIELDS = ["prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens", "calls"]
REQUIRED = ["event_id", "ts", "model", "prompt_tokens", "completion_tokens"]
TEXT_FIELDS = ["event_id", "model", "vendor", "app", "region"]
CE_KEYS = {"specversion", "data", "data_base64", "id", "time", "datacontenttype"}
MODELS = ["deepseek/deepseek-v4-flash", "openai/gpt-5.1", "qwen/qwen3-max", "moonshotai/kimi-k2.6"]
#: Examples per property; raise it for a deeper run, e.g. TOKENBOARD_TEST_FUZZ_EXAMPLES=2000.
FUZZ = hsettings(
    max_examples=int(os.environ.get("TOKENBOARD_TEST_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: Makes event ids unique across examples (the pipeline would count a repeated id once).
#: Fixed width: hypothesis replays a choice sequence and fails with FlakyStrategyDefinition
#: when a draw's bounds change, and ``truncated`` draws a cut inside the event's text, whose
#: length would grow with the counter's digits (fz-99 -> fz-100).
_ids = itertools.count()
ID_DIGITS = 9
#: The clock the strategies build timestamps from, read once (hypothesis needs strategies that
#: do not change between runs); far-future cases stay two days ahead of it, valid ones within
#: a week.
STRATEGY_NOW = time.time_ns() // 1_000_000


def now_ms() -> int:
    """The wall clock in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def rfc3339(ts_ms: int, offset_minutes: int = 0) -> str:
    """``ts_ms`` as RFC 3339 with milliseconds, ``Z`` or a UTC offset."""
    moment = datetime.fromtimestamp(ts_ms // 1000, UTC)
    if not offset_minutes:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"
    local = moment + timedelta(minutes=offset_minutes)
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return (
        local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}{sign}{hours:02d}:{minutes:02d}"
    )


def dumps(value: object) -> bytes:
    """Compact JSON of any value (stdlib json: also integers beyond 64 bits)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def nested(depth: int, leaf: object = 0) -> object:
    """A list nested ``depth`` levels deep."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


# Cases -------------------------------------------------------------------------------------
@dataclass
class Case:
    """One event as sent, and the verdict it must get.

    ``raw`` is the exact line/record text for cases JSON cannot express as a value (NaN, bad
    UTF-8, truncation, nesting beyond the parser's limit); otherwise ``value`` is sent.
    ``event`` is what must be counted when it is accepted; ``stage`` says whether it is
    rejected wherever it is judged (``gateway``) or only where the pipeline's event time is
    known (``worker``, i.e. too_old: the workers, and the gateway once they wrote it to Redis).
    """

    kind: str
    value: object = None
    raw: bytes | None = None
    reason: str | None = None
    field: str | None = None
    event: UsageEvent | None = None
    stage: str = "gateway"

    def text(self) -> bytes:
        """The bytes of this case as one record or NDJSON line."""
        return self.raw if self.raw is not None else dumps(self.value)

    def accepted_by_gateway(self, knows_watermark: bool) -> bool:
        """True when the gateway must accept it (valid, or rejected only where the pipeline's
        event time is known and the gateway does not know it)."""
        return self.reason is None or (self.stage == "worker" and not knows_watermark)


names = st.text(min_size=1, max_size=40)


@st.composite
def valid_events(draw: st.DrawFn, ts_ms: int | None = None) -> Case:
    """A valid event with every optional field drawn, and the UsageEvent it must become."""
    event_id = f"fz-{next(_ids):0{ID_DIGITS}d}-" + draw(st.text(max_size=8))
    model = draw(st.sampled_from(MODELS) | names)
    calls = draw(st.integers(1, 5))
    prompt = draw(st.integers(0, 5 * PER_CALL // 10 * calls))
    completion = draw(st.integers(0, 5 * PER_CALL // 10 * calls))
    ts = ts_ms if ts_ms is not None else STRATEGY_NOW - draw(st.integers(-3_600_000, 6 * DAY_MS))
    shape = draw(st.sampled_from(["int", "float", "utc", "offset"]))
    ts_value: object = {
        "int": ts,
        "float": ts + 0.25,
        "utc": rfc3339(ts),
        "offset": rfc3339(ts, draw(st.integers(-12 * 60, 14 * 60))),
    }[shape]
    value: dict[str, object] = {
        "event_id": event_id,
        "ts": ts_value,
        "model": model,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
    }
    if calls != 1 or draw(st.booleans()):
        value["calls"] = calls
    if draw(st.booleans()):
        value["reasoning_tokens"] = draw(st.integers(0, completion))
    if draw(st.booleans()):
        value["cached_tokens"] = draw(st.integers(0, prompt))
    for optional in ("vendor", "app", "region"):
        value[optional] = draw(st.none() | st.just("") | names)
    value["country"] = draw(st.none() | st.just("") | st.from_regex(r"[A-Za-z]{2}", fullmatch=True))
    if draw(st.booleans()):  # unknown fields, nested, are ignored
        value[draw(st.text(max_size=10).filter(lambda k: k not in value and k not in CE_KEYS))] = (
            nested(draw(st.integers(0, 200)), draw(st.none() | st.integers() | st.text(max_size=5)))
        )
    event = UsageEvent(event_id, ts, model, prompt, completion, calls=calls)
    return Case("valid", value=value, event=event)


@st.composite
def valid_cloudevents(draw: st.DrawFn) -> Case:
    """A structured CloudEvent whose id and time fill event_id and ts."""
    base = draw(valid_events())
    assert base.event is not None and isinstance(base.value, dict)
    data = {k: v for k, v in base.value.items() if k not in ("event_id", "ts")}
    envelope = {
        "specversion": "1.0",
        "type": "ai.tokenboard.usage",
        "source": "/fuzz",
        "id": base.event.event_id,
        "time": rfc3339(base.event.ts_ms),
        "datacontenttype": "application/json",
        "data": data,
    }
    return Case("cloudevent", value=envelope, event=base.event)


non_text = (
    st.integers()
    | st.booleans()
    | st.lists(st.integers(), max_size=3)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)
non_integer_counts = (
    st.text(max_size=10)
    | st.booleans()
    | st.floats(-(2.0**62), 2.0**62, allow_nan=False)
    | st.lists(st.integers(), max_size=3)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
    | st.integers(1, 100).map(nested)
)
# RFC 3339 needs ASCII digits: text without them can never be a timestamp.
digitless = st.text(alphabet=st.characters(exclude_characters="0123456789"), max_size=30)


@st.composite
def defective_events(draw: st.DrawFn) -> Case:
    """A valid event with exactly one defect, and the reason and field it must be rejected
    with."""
    base = draw(valid_events())
    assert isinstance(base.value, dict) and base.event is not None
    value = dict(base.value)
    kind = draw(
        st.sampled_from(
            [
                "missing", "wrong_type_count", "wrong_type_text", "negative", "huge",
                "per_call", "ts_before_1973", "ts_after_9999", "ts_future", "ts_text",
                "ts_impossible", "ts_wrong_type", "country", "long_text", "oversized",
                "cloudevent", "too_old",
            ]
        )
    )  # fmt: skip
    reason: str
    name: str | None
    if kind == "missing":
        name = draw(st.sampled_from(REQUIRED))
        how = draw(st.sampled_from(["drop", "null", "empty"]))
        if how == "drop" or (how == "empty" and name not in ("event_id", "model")):
            value.pop(name)
        else:
            value[name] = None if how == "null" else ""
        reason = "missing_field"
    elif kind == "wrong_type_count":
        name = draw(st.sampled_from(COUNT_FIELDS))
        value[name] = draw(non_integer_counts)
        reason = "wrong_type"
    elif kind == "wrong_type_text":
        name = draw(st.sampled_from([*TEXT_FIELDS, "country"]))
        value[name] = draw(non_text)
        reason = "wrong_type"
    elif kind == "negative":
        name = draw(st.sampled_from(COUNT_FIELDS))
        top = 0 if name == "calls" else -1
        value[name] = draw(st.integers(max_value=top) | st.integers(-(2**100), -(2**64)))
        reason = "negative_count"
    elif kind == "huge":
        name = draw(st.sampled_from(COUNT_FIELDS))
        value[name] = draw(st.integers(MAX_COUNT + 1, 2**100))
        reason = "absurd_count"
    elif kind == "per_call":
        calls = base.event.calls
        budget = PER_CALL * calls
        name = draw(st.sampled_from([None, "reasoning_tokens", "cached_tokens"]))
        if name is None:
            value["prompt_tokens"] = draw(st.integers(budget + 1, MAX_COUNT))
        else:
            value[name] = draw(st.integers(budget + 1, MAX_COUNT))
        reason = "absurd_count"
    elif kind.startswith("ts_"):
        name = "ts"
        reason = "bad_timestamp"
        if kind == "ts_before_1973":
            value["ts"] = draw(st.integers(-(2**62), MIN_TS_MS - 1) | st.just(1_790_000_000))
        elif kind == "ts_after_9999":
            value["ts"] = draw(st.integers(MAX_TS_MS + 1, 2**62))
        elif kind == "ts_future":
            ahead = draw(st.integers(STRATEGY_NOW + 2 * DAY_MS, MAX_TS_MS))
            value["ts"] = draw(st.sampled_from([ahead, rfc3339(ahead)]))
            reason = "future_timestamp"
        elif kind == "ts_text":
            value["ts"] = draw(digitless)
        elif kind == "ts_impossible":
            value["ts"] = draw(
                st.sampled_from(
                    ["2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-18T25:00:00Z",
                     "2026-11-18T12:61:00Z", "2026-11-18T12:00:00+24:00", "2026-11-18T12:00:00",
                     "1960-01-01T00:00:00Z"]
                )
            )  # fmt: skip
        else:
            value["ts"] = draw(st.booleans() | st.lists(st.integers(), max_size=2) | st.just({}))
    elif kind == "country":
        name = "country"
        value["country"] = draw(
            st.text(min_size=1, max_size=12).filter(
                lambda c: not (len(c) == 2 and c.isascii() and c.isalpha())
            )
        )
        reason = "bad_country"
    elif kind == "long_text":
        name = draw(st.sampled_from(TEXT_FIELDS))
        value[name] = draw(st.text(min_size=257, max_size=600))
        reason = "oversized"
    elif kind == "oversized":
        name = None
        value["padding"] = "x" * (MAX_EVENT_BYTES + draw(st.integers(1, 4000)))
        reason = "oversized"
    elif kind == "cloudevent":
        name = "data"
        envelope: dict[str, object] = {"specversion": "1.0", "id": "ce", "data": value}
        broken = draw(st.sampled_from(["base64", "no_data", "data_type", "content", "spec", "id"]))
        if broken == "base64":
            envelope["data_base64"] = "e30="
        elif broken == "no_data":
            envelope.pop("data")
        elif broken == "data_type":
            envelope["data"] = draw(st.integers() | st.text(max_size=5) | st.lists(st.integers()))
        elif broken == "content":
            envelope["datacontenttype"] = draw(st.sampled_from(["text/plain", "application/xml"]))
        elif broken == "spec":
            envelope["specversion"] = 1.0
        else:
            envelope["id"] = draw(st.integers() | st.lists(st.integers(), max_size=2))
        value = envelope
        reason = "bad_cloudevent"
    else:  # too_old: rejected by whoever knows the pipeline's event time
        old = STRATEGY_NOW - 40 * WEEK_MS
        value["ts"] = old
        return Case(kind, value=value, reason="too_old", field="ts", stage="worker")
    return Case(kind, value=value, reason=reason, field=name)


@st.composite
def raw_defects(draw: st.DrawFn) -> Case:
    """Text that is no JSON value: NaN/Infinity, bad UTF-8, truncation, nesting beyond the
    parser's limit, an empty record."""
    base = draw(valid_events())
    text = dumps(base.value)
    kind = draw(st.sampled_from(["nan", "bad_utf8", "truncated", "too_deep", "empty"]))
    if kind == "nan":
        literal = draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
        raw = text.replace(b'"prompt_tokens":', b'"prompt_tokens":' + literal.encode() + b',"_":')
        return Case(kind, raw=raw, reason="bad_json")
    if kind == "bad_utf8":
        bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80"]))
        raw = text.replace(b'"model":"', b'"model":"' + bad, 1)
        return Case(kind, raw=raw, reason="bad_utf8")
    if kind == "truncated":
        ascii_text = json.dumps(base.value, separators=(",", ":")).encode()
        return Case(
            kind, raw=ascii_text[: draw(st.integers(1, len(ascii_text) - 1))], reason="bad_json"
        )
    if kind == "too_deep":
        depth = draw(st.integers(1100, 3000))
        raw = text[:-1] + b',"deep":' + b"[" * depth + b"]" * depth + b"}"
        return Case(kind, raw=raw, reason="bad_json")
    return Case(kind, raw=b"", reason="bad_json")


not_objects = (
    st.integers()
    | st.text(max_size=10)
    | st.none()
    | st.booleans()
    | st.lists(st.integers(), max_size=3)
).map(lambda v: Case("not_object", value=v, reason="not_object"))

value_cases = st.one_of(
    valid_events(),
    valid_events(),
    valid_cloudevents(),
    defective_events(),
    defective_events(),
    not_objects,
)
any_cases = value_cases | raw_defects()


# Verdicts ----------------------------------------------------------------------------------
def verdict(result: UsageEvent | InvalidEvent | dict[str, Any]) -> tuple[str | None, str | None]:
    """(reason, field) of a decoder result or a gateway result entry; (None, None) accepted."""
    if isinstance(result, UsageEvent):
        return None, None
    if isinstance(result, InvalidEvent):
        return result.reason, result.field
    if result["status"] == "accepted":
        return None, None
    return result["reason"], result["field"]


def expected_verdict(case: Case, knows_watermark: bool) -> tuple[str | None, str | None]:
    """What the gateway or the decoder must answer for one case, knowing the pipeline's event
    time (the watermark) or not."""
    if case.stage == "worker" and not knows_watermark:
        return None, None
    return case.reason, case.field


@dataclass
class Body:
    """A request body built from cases, and the per-event verdicts it must get."""

    data: bytes
    content_type: str
    verdicts: list[tuple[str | None, str | None]]
    accepted: list[Case] = field(default_factory=list)


def build_body(
    cases: list[Case], shape: str, blank_lines: list[int], knows_watermark: bool
) -> Body:
    """The cases as one object, a JSON array or NDJSON, with the verdicts to expect.

    A body that is not JSON as a whole and has no line that is JSON either gets one verdict
    for the whole body (bad_utf8 when it is not UTF-8, else bad_json). NDJSON ignores blank
    lines, so a case whose text is empty gets no verdict there.
    """
    raw = any(c.raw is not None for c in cases)
    if shape == "single":
        data = cases[0].text()
        content_type = "application/json"
    elif shape == "array":
        data = b"[" + b",".join(c.text() for c in cases) + b"]"
        content_type = "application/json"
    else:
        cases = [c for c in cases if c.text().strip()]
        lines = [c.text() for c in cases]
        for at in blank_lines:
            lines.insert(min(at, len(lines)), [b"", b"   ", b"\t"][at % 3])
        data = b"\n".join(lines) + b"\n"
        content_type = "application/x-ndjson"
    if data == b"[]":
        # A lone empty record inside an array leaves an empty batch: nothing to judge.
        return Body(data, content_type, [])
    per_case = [expected_verdict(c, knows_watermark) for c in cases]
    whole_body_fails = (shape == "array" and raw) or (
        shape != "array" and all(v[0] in ("bad_json", "bad_utf8") for v in per_case)
    )
    if whole_body_fails:
        try:
            data.decode("utf-8")
            verdicts: list[tuple[str | None, str | None]] = [("bad_json", None)]
        except UnicodeDecodeError:
            verdicts = [("bad_utf8", None)]
        return Body(data, content_type, verdicts)
    accepted = [c for c in cases if c.accepted_by_gateway(knows_watermark)]
    return Body(data, content_type, per_case, accepted)


@st.composite
def bodies(draw: st.DrawFn, knows_watermark: bool = False) -> Body:
    """A request body of 1-12 cases: one object, a JSON array, or NDJSON of 2+ lines."""
    cases: list[Case] = draw(st.lists(any_cases, min_size=1, max_size=12))
    valid = [c for c in cases if c.kind in ("valid", "cloudevent")]
    retry: bool = draw(st.booleans())
    if valid and retry:
        cases.append(valid[0])  # a retried event: accepted again, counted once
    lines = sum(1 for c in cases if c.text().strip())
    if len(cases) == 1:
        # A lone JSON array body would be a batch of its elements, not one event.
        shape = (
            "array" if cases[0].kind == "not_object" else draw(st.sampled_from(["single", "array"]))
        )
    elif lines >= 2:
        shape = draw(st.sampled_from(["array", "ndjson"]))
    else:
        shape = "array"
    array_size = 2 + sum(len(c.text()) + 1 for c in cases)
    broken = any(c.raw is not None for c in cases)
    if shape == "array" and broken and lines >= 2 and array_size > MAX_EVENT_BYTES:
        shape = "ndjson"  # see test_a_broken_array_is_bad_json_whatever_its_size
    blank_lines = draw(st.lists(st.integers(0, 12), max_size=3))
    return build_body(cases, shape, blank_lines, knows_watermark)


# The decoder alone -----------------------------------------------------------------------
NOW_LIMITS = Limits(max_event_bytes=MAX_EVENT_BYTES)


@FUZZ
@given(any_cases)
def test_decoder_gives_each_defect_its_precise_reason_and_field(case: Case) -> None:
    """decode_event gives each generated defect its precise reason and field."""
    try:
        result: UsageEvent | InvalidEvent = decode_event(
            case.text(), now_ms=now_ms(), watermark_ms=now_ms(), limits=NOW_LIMITS
        )
    except InvalidEvent as exc:
        result = exc
    assert verdict(result) == (case.reason, case.field), case
    if isinstance(result, UsageEvent):
        assert case.event is not None
        assert (result.event_id, result.ts_ms, result.model, result.tokens, result.calls) == (
            case.event.event_id, case.event.ts_ms, case.event.model, case.event.tokens,
            case.event.calls,
        )  # fmt: skip


@FUZZ
@given(bodies())
def test_batch_decoder_isolates_every_defect(body: Body) -> None:
    """decode_batch gives each event of a fuzzed body its own expected verdict, in order."""
    results = decode_batch(body.data, now_ms=now_ms(), limits=NOW_LIMITS)
    assert [verdict(r) for r in results] == body.verdicts


def test_strategies_draw_the_same_shapes_on_every_run() -> None:
    """The same seed draws bodies of the same sizes twice: no counter, clock or run order
    shapes a case (hypothesis would call such a strategy flaky while replaying it)."""

    def sizes_of_one_run() -> list[int]:
        sizes: list[int] = []

        @hseed(20261202)
        @hsettings(max_examples=40, database=None, phases=[Phase.generate], deadline=None)
        @given(bodies())
        def draw(body: Body) -> None:
            sizes.append(len(body.data))

        draw()
        return sizes

    sizes = [sizes_of_one_run(), sizes_of_one_run()]
    assert sizes[0] == sizes[1] and len(sizes[0]) == 40


def test_an_events_verdict_does_not_depend_on_its_batch() -> None:
    """A deeply nested unknown field gets the same verdict alone and in a large array."""
    event = {
        "event_id": "deep",
        "ts": now_ms(),
        "model": "m",
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "extra": nested(300),
    }
    padding = [{"event_id": f"p{i}", "ts": now_ms(), "model": "m", "prompt_tokens": 1,
                "completion_tokens": 1, "app": "x" * 200} for i in range(60)]  # fmt: skip
    alone = decode_batch(dumps([event]), now_ms=now_ms(), limits=NOW_LIMITS)
    large = dumps([event, *padding])
    assert len(large) > MAX_EVENT_BYTES
    batched = decode_batch(large, now_ms=now_ms(), limits=NOW_LIMITS)
    assert verdict(alone[0]) == verdict(batched[0]) == (None, None)


def test_a_broken_array_is_bad_json_whatever_its_size() -> None:
    """A JSON array with a NaN in it is bad_json for the whole body, small or large."""
    event = {"event_id": "e", "ts": now_ms(), "model": "m", "prompt_tokens": 1,
             "completion_tokens": 1, "app": "x" * 200}  # fmt: skip
    for count in (5, 60):
        body = b"[" + b",".join([dumps(event)] * count) + b",NaN]"
        results = decode_batch(body, now_ms=now_ms(), limits=NOW_LIMITS)
        assert [verdict(r) for r in results] == [("bad_json", None)], len(body)


# The ingest API and the pipeline end to end --------------------------------------------------
@dataclass
class Ledger:
    """What the fuzzing sent and what must come out of the pipeline."""

    counted: list[UsageEvent] = field(default_factory=list)
    accepted_ids: set[str] = field(default_factory=set)
    dead_letters: dict[str, str] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    events_sent: int = 0
    raw_records: int = 0

    def accept(self, case: Case, key: str) -> None:
        """Record a case that reached the usage topic under ``key``."""
        self.accepted_ids.add(key)
        if case.reason is None:
            assert case.event is not None
            self.counted.append(case.event)
        else:
            self.dead_letters[key] = case.reason
            self.reasons[case.reason] += 1


def expected_id(case: Case) -> str:
    """The event id an accepted case must be reported with."""
    if case.event is not None:
        return case.event.event_id
    assert isinstance(case.value, dict)
    return str(case.value["event_id"])


def on_loop(loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run coroutines on ``loop`` from the hypothesis thread, waiting at most a minute."""

    def call(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(60)

    return call


@pytest.mark.slow
async def test_ingest_api_fuzz_end_to_end(settings: Settings) -> None:
    """Fuzzed bodies and raw records: precise 4xx and dead letters, exact totals, no crash."""
    limits = {"max_request_bytes": MAX_REQUEST_BYTES, "max_event_bytes": MAX_EVENT_BYTES}
    s = settings.replace(**limits)
    await ensure_topics(s)
    worker = WorkerProcess(s, "fuzz").start()
    ledger = Ledger()
    call = on_loop(asyncio.get_running_loop())
    try:
        await asyncio.to_thread(worker.wait_ready, 90)
        async with UsageProducer(s) as producer:
            # Every partition sees a recent event first, so its watermark can age others out.
            primer = [
                UsageEvent(f"primer-{i}", now_ms() - 60_000, "openai/gpt-5.1", 10, 1)
                for i in range(64)
            ]
            await producer.send_many(primer)
            ledger.counted.extend(primer)
            ledger.events_sent += len(primer)
            # The gateway refuses too-old events once the workers wrote the pipeline's event
            # time to Redis: from then on its verdicts do not depend on timing.
            await wait_until(lambda: watermark_in_redis(s), timeout_s=60, what="the watermark")
            await fuzz_gateway(s, ledger, call)
            await fuzz_records(producer, ledger, call)
        took = await wait_for_totals(s, Expected.of(ledger.counted), 180, [worker])

        async def all_dead_letters() -> dict[str, str] | None:
            records = await read_topic(s, s.dead_letter_topic)
            got = {
                (r.key or b"").decode(errors="replace"): dict(r.headers)["reason"].decode()
                for r in records
            }
            return got if len(got) >= len(ledger.dead_letters) else None

        dead = await wait_until(all_dead_letters, timeout_s=60, what="every dead letter")
        usage = {(r.key or b"").decode() for r in await read_topic(s, s.usage_topic, 60)}
        assert worker.proc is not None and worker.proc.poll() is None, "the worker crashed"
    finally:
        worker.stop()
    record_figures(
        "fuzz_ingest_end_to_end",
        events_sent=ledger.events_sent,
        raw_records_sent=ledger.raw_records,
        events_counted=Expected.of(ledger.counted).events,
        duplicates_counted=0,
        lost=len(ledger.accepted_ids - usage),
        dead_lettered=len(dead),
        http_statuses=dict(ledger.statuses),
        rejections=dict(ledger.reasons),
        exact_after_s=round(took, 1),
    )
    assert ledger.accepted_ids <= usage, "an accepted event is not on the usage topic"
    assert dead == ledger.dead_letters
    assert set(ledger.statuses) <= {200, 207, 400, 413, 415}


async def fuzz_gateway(
    settings: Settings, ledger: Ledger, call: Callable[[Coroutine[Any, Any, Any]], Any]
) -> None:
    """Post fuzzed bodies (and oversized ones, and wrong content types) to the gateway, which
    knows the pipeline's event time."""
    async with running_gateway(settings, rate_limit=None) as client:

        async def post(data: bytes, content_type: str) -> tuple[int, Any]:
            response = await client.post(
                "/v1/events", data=data, headers={"Content-Type": content_type}
            )
            return response.status, await response.json()

        @FUZZ
        @given(bodies(knows_watermark=True))
        def post_body(body: Body) -> None:
            status, answer = call(post(body.data, body.content_type))
            ledger.statuses[status] += 1
            ledger.events_sent += len(body.verdicts)
            assert status == http_status(body.verdicts), answer
            results = answer["results"]
            assert [r["index"] for r in results] == list(range(len(body.verdicts)))
            assert [verdict(r) for r in results] == body.verdicts
            assert all(r["detail"] for r in results if r["status"] == "rejected")
            for v in body.verdicts:
                if v[0] is not None:
                    ledger.reasons[v[0]] += 1
            accepted = iter(body.accepted)
            for result in results:
                if result["status"] == "accepted":
                    case = next(accepted)
                    assert result["event_id"] == expected_id(case)
                    ledger.accept(case, result["event_id"])

        @FUZZ
        @given(
            st.integers(1, 3 * MAX_REQUEST_BYTES // 4),
            st.sampled_from(["application/json", "application/x-ndjson"]),
        )
        def post_oversized(extra: int, content_type: str) -> None:
            data = b"[" + b" " * (MAX_REQUEST_BYTES + extra) + b"]"
            status, answer = call(post(data, content_type))
            ledger.statuses[status] += 1
            assert (status, answer["error"]) == (413, "payload_too_large")

        @FUZZ
        @given(
            st.sampled_from(
                ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                 "application/xml", "application/octet-stream", "text/json"]
            ),
            st.binary(max_size=200),
        )  # fmt: skip
        def post_wrong_type(content_type: str, data: bytes) -> None:
            status, answer = call(post(data, content_type))
            ledger.statuses[status] += 1
            assert (status, answer["error"]) == (415, "unsupported_media_type")

        await asyncio.to_thread(post_body)
        await asyncio.to_thread(post_oversized)
        await asyncio.to_thread(post_wrong_type)


async def watermark_in_redis(settings: Settings) -> str | None:
    """The pipeline's event time as the workers wrote it to Redis (None before)."""
    client = connect(settings)
    try:
        value: str | None = await client.get(RedisKeys(settings.redis_prefix).watermark)
        return value
    finally:
        await client.aclose()


def http_status(verdicts: list[tuple[str | None, str | None]]) -> int:
    """200 all accepted (or an empty batch), 400 none accepted, 207 some of each."""
    rejected = sum(1 for v in verdicts if v[0] is not None)
    if not rejected:
        return 200
    return 400 if rejected == len(verdicts) else 207


async def fuzz_records(
    producer: UsageProducer, ledger: Ledger, call: Callable[[Coroutine[Any, Any, Any]], Any]
) -> None:
    """Send fuzzed records straight to the usage topic, as a buggy SDK client could."""
    keys = itertools.count()

    async def send(records: list[tuple[str, bytes]]) -> None:
        futures = [await producer.send_raw(key, data) for key, data in records]
        await asyncio.gather(*futures)

    @FUZZ
    @given(st.lists(any_cases, min_size=1, max_size=8))
    def send_records(cases: list[Case]) -> None:
        records = []
        for case in cases:
            key = case.event.event_id if case.reason is None and case.event else f"raw-{next(keys)}"
            records.append((key, case.text()))
            ledger.accept(case, key)
        call(send(records))
        ledger.raw_records += len(records)

    await asyncio.to_thread(send_records)
