"""Usage events: the schema, its validation with precise reasons, and the orjson wire format.

Everything here is a pure function of its arguments. The wall clock (``now_ms``) and the
pipeline's event-time watermark are passed in rather than read, so the same bytes always get
the same verdict and replaying history gives the same result as the live run did.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

import orjson

from aggregations.errors import InvalidInput

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_COUNT",
    "MAX_TS_MS",
    "MIN_TS_MS",
    "CountedFields",
    "InvalidEvent",
    "Limits",
    "RejectReason",
    "UsageEvent",
    "decode_batch",
    "decode_event",
    "decode_fields",
    "encode_event",
    "encoded_size",
    "event_from_mapping",
    "parse_timestamp",
]

RejectReason = Literal[
    "bad_utf8",
    "bad_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "negative_count",
    "absurd_count",
    "bad_timestamp",
    "future_timestamp",
    "too_old",
    "oversized",
    "bad_country",
    "bad_cloudevent",
]

# No single count may exceed this, whatever ``calls`` says: sums of a whole week of traffic
# stay far below 2**63, so Redis and Kafka never see an overflowing integer.
MAX_COUNT = 10**15
# Epoch ms before 1973-03-03 are nearly always epoch *seconds* sent by mistake; the upper end
# is the last millisecond of year 9999, where ISO dates and week ids end.
MIN_TS_MS = 100_000_000_000
MAX_TS_MS = 253_402_300_799_999

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# RFC 3339 section 5.6; it allows "t", "z" and a space as separator. [0-9] rather than \d:
# int() would happily convert non-ASCII digits.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
_MAX_TIMESTAMP_CHARS = 64


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One LLM call, or a rollup of ``calls`` calls, as it enters the pipeline.

    Counts follow the OpenAI usage convention: ``reasoning_tokens`` are part of
    ``completion_tokens`` and ``cached_tokens`` part of ``prompt_tokens``, so neither is
    added again to :attr:`tokens`.
    """

    event_id: str
    ts_ms: int
    model: str
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    calls: int = 1
    vendor: str | None = None
    country: str | None = None
    app: str | None = None
    region: str | None = None

    @property
    def tokens(self) -> int:
        """Tokens counted on the leaderboard: ``prompt_tokens + completion_tokens``."""
        return self.prompt_tokens + self.completion_tokens


def _slot_setter(name: str) -> Callable[[UsageEvent, object], None]:
    setter: Callable[[UsageEvent, object], None] = getattr(UsageEvent, name).__set__
    return setter


# A frozen dataclass's __init__ assigns each field through object.__setattr__, which costs as
# much as validating the whole event; the decoder, which builds every event of the stream,
# writes the slots directly instead (twice as fast). Equality with UsageEvent(...) is tested.
_new_object = object.__new__
_set_event_id = _slot_setter("event_id")
_set_ts_ms = _slot_setter("ts_ms")
_set_model = _slot_setter("model")
_set_prompt_tokens = _slot_setter("prompt_tokens")
_set_completion_tokens = _slot_setter("completion_tokens")
_set_reasoning_tokens = _slot_setter("reasoning_tokens")
_set_cached_tokens = _slot_setter("cached_tokens")
_set_calls = _slot_setter("calls")
_set_vendor = _slot_setter("vendor")
_set_country = _slot_setter("country")
_set_app = _slot_setter("app")
_set_region = _slot_setter("region")


def _build_event(
    event_id: str,
    ts_ms: int,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    reasoning_tokens: int,
    cached_tokens: int,
    calls: int,
    vendor: str | None,
    country: str | None,
    app: str | None,
    region: str | None,
) -> UsageEvent:
    event: UsageEvent = _new_object(UsageEvent)
    _set_event_id(event, event_id)
    _set_ts_ms(event, ts_ms)
    _set_model(event, model)
    _set_prompt_tokens(event, prompt_tokens)
    _set_completion_tokens(event, completion_tokens)
    _set_reasoning_tokens(event, reasoning_tokens)
    _set_cached_tokens(event, cached_tokens)
    _set_calls(event, calls)
    _set_vendor(event, vendor)
    _set_country(event, country)
    _set_app(event, app)
    _set_region(event, region)
    return event


class InvalidEvent(InvalidInput):
    """A rejected usage event: a machine-readable ``reason``, a ``detail`` for humans and the
    offending ``field`` when one is to blame.

    ``str(exc)`` is ``"reason: detail"``.
    """

    reason: RejectReason
    detail: str
    field: str | None

    def __init__(self, reason: RejectReason, detail: str, field: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.field = field

    def __reduce__(self) -> tuple[type[InvalidEvent], tuple[RejectReason, str, str | None]]:
        # Exceptions unpickle as cls(*self.args), and args holds only the joined message.
        return (type(self), (self.reason, self.detail, self.field))

    def as_dict(self) -> dict[str, str | None]:
        """The rejection as the gateway and the dead-letter topic report it."""
        return {"reason": self.reason, "detail": self.detail, "field": self.field}


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds beyond which an event is rejected rather than counted."""

    max_tokens_per_call: int = 10_000_000
    max_event_bytes: int = 65_536
    max_future_ms: int = 86_400_000
    retention_ms: int = 26 * 7 * 86_400_000
    max_id_length: int = 256
    # Applies to model, vendor, app and region: they become Redis keys and dashboard labels.
    max_name_length: int = 256


DEFAULT_LIMITS = Limits()


def _json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for error details."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _show(value: object) -> str:
    """A short repr: details end up in HTTP answers and dead letters, not whole payloads."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _instant(ts_ms: int) -> str:
    """``2026-11-22T10:00:00Z`` for error messages (people read dates, not milliseconds)."""
    try:
        moment = datetime.fromtimestamp(ts_ms / 1000, UTC)
    except (OverflowError, ValueError, OSError):
        return f"{ts_ms} ms"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(ms: int) -> str:
    """``2 d 3 h``, ``45 min``, ``12 s``: a duration as people say it."""
    seconds = ms // 1000
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else ""]
    if not days:
        parts.append(f"{minutes} min" if minutes else "")
        if not hours:
            parts.append(f"{secs} s" if secs or not minutes else "")
    return " ".join(p for p in parts if p)


def _bad_ts(detail: str) -> InvalidEvent:
    return InvalidEvent("bad_timestamp", detail, "ts")


def _parse_rfc3339(text: str) -> int:
    match = _RFC3339.fullmatch(text) if len(text) <= _MAX_TIMESTAMP_CHARS else None
    if match is None:
        raise _bad_ts(f"'ts' is neither epoch milliseconds nor RFC 3339: {_show(text)}")
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    try:
        days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        raise _bad_ts(f"'ts' names a day that does not exist: {_show(text)}") from None
    h, m, s = int(hour), int(minute), int(second)
    # Second 60 is an RFC 3339 leap second; it lands on the next second, which is harmless.
    if h > 23 or m > 59 or s > 60:
        raise _bad_ts(f"'ts' has an impossible time of day: {_show(text)}")
    offset = 0
    if sign is not None:
        oh, om = int(off_h), int(off_m)
        if oh > 23 or om > 59:
            raise _bad_ts(f"'ts' has an impossible UTC offset: {_show(text)}")
        offset = oh * 60 + om if sign == "+" else -(oh * 60 + om)
    ms = (((days * 24 + h) * 60 + m - offset) * 60 + s) * 1000
    if fraction:
        ms += int(fraction[:3].ljust(3, "0"))
    return ms


def parse_timestamp(value: object) -> int:
    """Epoch milliseconds from epoch ms (int, or finite float truncated) or an RFC 3339 string.

    RFC 3339 needs an offset (``Z`` or ``+02:00``); fractional seconds are truncated to the
    millisecond. Results outside 1973-03-03 .. 9999-12-31 are rejected, which catches epoch
    seconds sent by mistake. Raises :class:`InvalidEvent` with reason ``bad_timestamp``.
    """
    if type(value) is int:
        ms = value
    elif type(value) is float:
        if not math.isfinite(value):
            raise _bad_ts(f"'ts' must be a finite number, got {value}")
        ms = int(value)
    elif type(value) is str:
        ms = _parse_rfc3339(value)
    else:
        raise _bad_ts(
            f"'ts' must be epoch milliseconds or an RFC 3339 string, got {_json_type(value)}"
        )
    if ms < MIN_TS_MS:
        raise _bad_ts(f"'ts' {ms} is before 1973: epoch seconds instead of milliseconds?")
    if ms > MAX_TS_MS:
        raise _bad_ts(f"'ts' {ms} is after year 9999")
    return ms


def _text(value: object, name: str, max_length: int) -> str | None:
    """A string field; ``None`` when absent, null or empty (gateways send all three)."""
    if type(value) is str:
        if 0 < len(value) <= max_length:
            return value
        if value:
            raise InvalidEvent(
                "oversized", f"{name!r} is {len(value)} characters, the limit is {max_length}", name
            )
        return None
    if value is None:
        return None
    raise InvalidEvent("wrong_type", f"{name!r} must be a string, got {_json_type(value)}", name)


def _required_text(value: object, name: str, max_length: int) -> str:
    text = _text(value, name, max_length)
    if text is None:
        raise InvalidEvent("missing_field", f"{name!r} is required", name)
    return text


def _count(value: object, name: str, default: int | None, minimum: int = 0) -> int:
    """A count field; ``default`` None makes it required."""
    if type(value) is int:
        if minimum <= value <= MAX_COUNT:
            return value
        if value < minimum:
            raise InvalidEvent(
                "negative_count", f"{name!r} must be >= {minimum}, got {value}", name
            )
        raise InvalidEvent("absurd_count", f"{name!r} is {value}, above {MAX_COUNT}", name)
    if value is None:
        if default is None:
            raise InvalidEvent("missing_field", f"{name!r} is required", name)
        return default
    # orjson decodes integer literals beyond 64 bits as floats: report what was meant.
    if type(value) is float and math.isfinite(value) and abs(value) >= 2**63:
        if value < 0:
            raise InvalidEvent(
                "negative_count", f"{name!r} must be >= {minimum}, got {value:.0f}", name
            )
        raise InvalidEvent("absurd_count", f"{name!r} is {value:.0f}, above {MAX_COUNT}", name)
    raise InvalidEvent(
        "wrong_type", f"{name!r} must be an integer, got {_json_type(value)} {_show(value)}", name
    )


def _country(value: object) -> str | None:
    if value is None or value == "":
        return None
    if type(value) is not str:
        raise InvalidEvent(
            "wrong_type", f"'country' must be a string, got {_json_type(value)}", "country"
        )
    if len(value) == 2 and value.isascii() and value.isalpha():
        return value.upper()
    raise InvalidEvent(
        "bad_country",
        f"'country' must be an ISO 3166-1 alpha-2 code such as 'US', got {_show(value)}",
        "country",
    )


def _bad_envelope(detail: str) -> InvalidEvent:
    return InvalidEvent("bad_cloudevent", detail, "data")


def _unwrap_cloudevent(envelope: Mapping[str, object]) -> Mapping[str, object]:
    """The usage event inside a structured-mode CloudEvent, with ``id``/``time`` as fallbacks."""
    if type(envelope["specversion"]) is not str:
        raise _bad_envelope("CloudEvent 'specversion' must be a string")
    content_type = envelope.get("datacontenttype")
    if content_type is not None and (
        type(content_type) is not str or "json" not in content_type.lower()
    ):
        raise _bad_envelope(f"CloudEvent 'datacontenttype' must be JSON, got {_show(content_type)}")
    if "data_base64" in envelope:
        raise _bad_envelope("CloudEvent 'data_base64' is not supported: put the event in 'data'")
    data = envelope.get("data")
    if data is None:
        raise _bad_envelope("CloudEvent has no 'data'")
    if not isinstance(data, Mapping):
        raise _bad_envelope(f"CloudEvent 'data' must be an object, got {_json_type(data)}")
    ce_id = envelope.get("id")
    ce_time = envelope.get("time")
    if ce_id is not None and type(ce_id) is not str:
        raise _bad_envelope(f"CloudEvent 'id' must be a string, got {_json_type(ce_id)}")
    fill_id = ce_id is not None and data.get("event_id") is None
    fill_ts = ce_time is not None and data.get("ts") is None
    if not (fill_id or fill_ts):
        return data
    merged = dict(data)
    if fill_id:
        merged["event_id"] = ce_id
    if fill_ts:
        merged["ts"] = ce_time
    return merged


def event_from_mapping(
    obj: Mapping[str, object],
    *,
    now_ms: int,
    watermark_ms: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> UsageEvent:
    """Validate a decoded event (or a CloudEvent wrapping one) into a :class:`UsageEvent`.

    ``now_ms`` is the wall clock, bounding how far ahead ``ts`` may be; ``watermark_ms`` is the
    pipeline's event-time watermark, from which the retention horizon is counted back (none:
    no age limit). Unknown fields are ignored. Raises :class:`InvalidEvent`.
    """
    if "specversion" in obj:
        obj = _unwrap_cloudevent(obj)
    get = obj.get
    event_id = _required_text(get("event_id"), "event_id", limits.max_id_length)
    model = _required_text(get("model"), "model", limits.max_name_length)
    ts = get("ts")
    if ts is None:
        raise InvalidEvent("missing_field", "'ts' is required", "ts")
    ts_ms = parse_timestamp(ts)
    if ts_ms > now_ms + limits.max_future_ms:
        raise InvalidEvent(
            "future_timestamp",
            f"'ts' {_instant(ts_ms)} is {_duration(ts_ms - now_ms)} ahead of the clock "
            f"({_instant(now_ms)}); the limit is {_duration(limits.max_future_ms)}",
            "ts",
        )
    if watermark_ms is not None and ts_ms < watermark_ms - limits.retention_ms:
        raise InvalidEvent(
            "too_old",
            f"'ts' {_instant(ts_ms)} is more than {_duration(limits.retention_ms)} before the "
            f"pipeline's event time ({_instant(watermark_ms)}): its week is past retention",
            "ts",
        )
    prompt = _count(get("prompt_tokens"), "prompt_tokens", None)
    completion = _count(get("completion_tokens"), "completion_tokens", None)
    reasoning = _count(get("reasoning_tokens"), "reasoning_tokens", 0)
    cached = _count(get("cached_tokens"), "cached_tokens", 0)
    calls = _count(get("calls"), "calls", 1, minimum=1)
    # Multiplying rather than dividing keeps the per-call check exact for rollups.
    budget = limits.max_tokens_per_call * calls
    if prompt + completion > budget or reasoning > budget or cached > budget:
        raise _absurd(prompt + completion, reasoning, cached, calls, limits)
    max_name = limits.max_name_length
    return _build_event(
        event_id,
        ts_ms,
        model,
        prompt,
        completion,
        reasoning,
        cached,
        calls,
        _text(get("vendor"), "vendor", max_name),
        _country(get("country")),
        _text(get("app"), "app", max_name),
        _text(get("region"), "region", max_name),
    )


def _absurd(tokens: int, reasoning: int, cached: int, calls: int, limits: Limits) -> InvalidEvent:
    budget = limits.max_tokens_per_call * calls
    field: str | None = None
    what, value = "prompt + completion", tokens
    if tokens <= budget:
        field, value = (
            ("reasoning_tokens", reasoning) if reasoning > budget else ("cached_tokens", cached)
        )
        what = repr(field)
    return InvalidEvent(
        "absurd_count",
        f"{what} is {value} tokens over {calls} call(s), "
        f"more than {limits.max_tokens_per_call} per call",
        field,
    )


def _undecodable(raw: bytes, error: orjson.JSONDecodeError) -> InvalidEvent:
    # orjson reports bad UTF-8 as a JSON error; only this slow path tells the two apart.
    try:
        str(raw, "utf-8")
    except UnicodeDecodeError as bad:
        return InvalidEvent("bad_utf8", f"invalid UTF-8 at byte {bad.start}")
    return InvalidEvent("bad_json", str(error))


def decode_event(
    raw: bytes,
    *,
    now_ms: int,
    watermark_ms: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> UsageEvent:
    """Decode and validate one event from its JSON bytes (the stream's hot path).

    Checks size, then UTF-8, then JSON, then that it is an object, then the fields (see
    :func:`event_from_mapping`). Raises :class:`InvalidEvent`, never anything else.
    """
    if len(raw) > limits.max_event_bytes:
        raise InvalidEvent(
            "oversized", f"event is {len(raw)} bytes, the limit is {limits.max_event_bytes}"
        )
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _undecodable(raw, exc) from exc
    if type(obj) is not dict:
        raise InvalidEvent("not_object", f"an event must be a JSON object, got {_json_type(obj)}")
    return event_from_mapping(obj, now_ms=now_ms, watermark_ms=watermark_ms, limits=limits)


#: What stage 1 counts of an event: (event_id, ts_ms, model, prompt_tokens,
#: completion_tokens, calls, vendor, country, app, cached_tokens). ``cached_tokens`` only
#: prices the event (aggregations/prices.py).
CountedFields = tuple[str, int, str, int, int, int, str | None, str | None, str | None, int]


def decode_fields(
    raw: bytes,
    *,
    now_ms: int,
    watermark_ms: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> CountedFields:
    """:func:`decode_event` for the stream's hot loop: the counted fields, no :class:`UsageEvent`.

    Events of the usual shape (plain ints for counts and time, strings within limits) are
    checked inline; anything else goes through :func:`decode_event`, so verdicts and values
    are always the same as its own (a property test holds the two together). Raises
    :class:`InvalidEvent`.
    """
    obj: object = None
    if len(raw) <= limits.max_event_bytes:
        try:  # noqa: SIM105 - contextlib.suppress costs a tenth of the whole check
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # decode_event below gives the verdict
    if type(obj) is dict:
        get = obj.get
        event_id = get("event_id")
        model = get("model")
        ts = get("ts")
        prompt = get("prompt_tokens")
        completion = get("completion_tokens")
        if len(obj) == 5:
            # The five required fields and nothing else (their types are checked below).
            calls, vendor, country, app, cached = 1, None, None, None, 0
            optional_ok = True
        elif "specversion" in obj:
            optional_ok = False
        else:
            calls = get("calls", 1)
            reasoning = get("reasoning_tokens", 0)
            cached = get("cached_tokens", 0)
            vendor = get("vendor")
            country = get("country")
            app = get("app")
            region = get("region")
            max_name = limits.max_name_length
            budget = limits.max_tokens_per_call
            optional_ok = (
                type(calls) is int
                and type(reasoning) is int
                and type(cached) is int
                and 1 <= calls <= MAX_COUNT
                and 0 <= reasoning <= MAX_COUNT
                and 0 <= cached <= MAX_COUNT
                and reasoning <= budget * calls
                and cached <= budget * calls
                and (vendor is None or (type(vendor) is str and len(vendor) <= max_name))
                and (country is None or (type(country) is str and len(country) == 2
                                         and country.isascii() and country.isalpha()))
                and (app is None or (type(app) is str and len(app) <= max_name))
                and (region is None or (type(region) is str and len(region) <= max_name))
            )  # fmt: skip
        if (
            optional_ok
            and type(event_id) is str
            and type(model) is str
            and type(ts) is int
            and type(prompt) is int
            and type(completion) is int
            and 0 < len(event_id) <= limits.max_id_length
            and 0 < len(model) <= limits.max_name_length
            and MIN_TS_MS <= ts <= MAX_TS_MS
            and ts <= now_ms + limits.max_future_ms
            and (watermark_ms is None or ts >= watermark_ms - limits.retention_ms)
            and 0 <= prompt <= MAX_COUNT
            and 0 <= completion <= MAX_COUNT
            and prompt + completion <= limits.max_tokens_per_call * calls
        ):
            return (
                event_id,
                ts,
                model,
                prompt,
                completion,
                calls,
                vendor or None,
                country.upper() if country is not None else None,
                app or None,
                cached,
            )
    event = decode_event(raw, now_ms=now_ms, watermark_ms=watermark_ms, limits=limits)
    return (
        event.event_id,
        event.ts_ms,
        event.model,
        event.prompt_tokens,
        event.completion_tokens,
        event.calls,
        event.vendor,
        event.country,
        event.app,
        event.cached_tokens,
    )


def encode_event(event: UsageEvent) -> bytes:
    """The event as compact JSON: ``ts`` in epoch ms, defaults and absent fields left out."""
    out: dict[str, object] = {
        "event_id": event.event_id,
        "ts": event.ts_ms,
        "model": event.model,
        "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.completion_tokens,
    }
    if event.reasoning_tokens:
        out["reasoning_tokens"] = event.reasoning_tokens
    if event.cached_tokens:
        out["cached_tokens"] = event.cached_tokens
    if event.calls != 1:
        out["calls"] = event.calls
    if event.vendor is not None:
        out["vendor"] = event.vendor
    if event.country is not None:
        out["country"] = event.country
    if event.app is not None:
        out["app"] = event.app
    if event.region is not None:
        out["region"] = event.region
    return orjson.dumps(out)


def decode_batch(
    body: bytes,
    *,
    now_ms: int,
    watermark_ms: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> list[UsageEvent | InvalidEvent]:
    """Decode an HTTP request body: one JSON object, a JSON array of objects, or NDJSON.

    Returns one entry per event, in order: the event, or the :class:`InvalidEvent` that
    rejected it, so one bad event does not spoil the others. A body that cannot be read as
    any of the three shapes yields a single :class:`InvalidEvent`.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        whole_body_error = _undecodable(body, exc)
        return _decode_lines(body, whole_body_error, now_ms, watermark_ms, limits)
    if type(doc) is list:
        # Only a body above the limit can hold an element above it: skip re-encoding otherwise.
        check_size = len(body) > limits.max_event_bytes
        return [_from_item(item, check_size, now_ms, watermark_ms, limits) for item in doc]
    if len(body) > limits.max_event_bytes:
        return [
            InvalidEvent(
                "oversized", f"event is {len(body)} bytes, the limit is {limits.max_event_bytes}"
            )
        ]
    return [_from_item(doc, False, now_ms, watermark_ms, limits)]


def _from_item(
    item: object, check_size: bool, now_ms: int, watermark_ms: int | None, limits: Limits
) -> UsageEvent | InvalidEvent:
    if type(item) is not dict:
        return InvalidEvent("not_object", f"an event must be a JSON object, got {_json_type(item)}")
    if check_size:
        size = encoded_size(item)
        if size > limits.max_event_bytes:
            return InvalidEvent(
                "oversized", f"event is {size} bytes, the limit is {limits.max_event_bytes}"
            )
    try:
        return event_from_mapping(item, now_ms=now_ms, watermark_ms=watermark_ms, limits=limits)
    except InvalidEvent as exc:
        return exc


def encoded_size(doc: object) -> int:
    """Bytes of ``doc`` as compact JSON (what ``orjson.dumps`` writes), at any nesting depth.

    orjson writes fewer nesting levels than it reads, so a decoded element cannot always be
    re-encoded to be measured; this walks it with an explicit stack instead of recursion.
    """
    try:
        return len(orjson.dumps(doc))
    except orjson.JSONEncodeError:
        pass
    size = 0
    stack: list[object] = [doc]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            size += 2 + max(0, 2 * len(node) - 1)  # braces, one colon per entry, commas
            for key, value in node.items():
                size += len(orjson.dumps(key))
                stack.append(value)
        elif type(node) is list:
            size += 2 + max(0, len(node) - 1)  # brackets, commas
            stack.extend(node)
        else:
            size += len(orjson.dumps(node))
    return size


def _decode_lines(
    body: bytes,
    whole_body_error: InvalidEvent,
    now_ms: int,
    watermark_ms: int | None,
    limits: Limits,
) -> list[UsageEvent | InvalidEvent]:
    lines = [(n, line) for n, line in enumerate(body.split(b"\n"), 1) if line.strip()]
    if len(lines) <= 1:
        # One line that is not JSON is the body itself: its verdict must not depend on size.
        return [whole_body_error]
    results: list[UsageEvent | InvalidEvent] = []
    any_line_parsed = False
    for number, line in lines:
        try:
            results.append(
                decode_event(line, now_ms=now_ms, watermark_ms=watermark_ms, limits=limits)
            )
            any_line_parsed = True
        except InvalidEvent as exc:
            if exc.reason in ("bad_json", "bad_utf8"):
                # The parser counts within the line; a person looks for the body's line.
                exc = InvalidEvent(exc.reason, f"line {number} of the body: {exc.detail}")
            results.append(exc)
            any_line_parsed = any_line_parsed or exc.reason not in ("bad_json", "bad_utf8")
    # If no line is JSON either, this is not NDJSON: one verdict for the whole body.
    return results if any_line_parsed else [whole_body_error]
