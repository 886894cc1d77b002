"""One HTTP attempt to deliver an event, and the dead-letter record of one given up on."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer

from streams import metrics
from streams.notify.config import Target
from streams.notify.retry import Verdict, parse_retry_after, verdict

__all__ = ["Attempt", "DeadLetters", "post_once"]

#: Characters of a refusing answer's body kept in the reason (Slack says why: "invalid_token").
BODY_EXCERPT = 200


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one POST came to."""

    verdict: Verdict
    #: For people: ``HTTP 503: upstream down``, ``connection refused (...)``, ``timed out``.
    reason: str
    status: int | None = None
    retry_after_s: float | None = None


async def post_once(
    session: aiohttp.ClientSession, target: Target, body: bytes, headers: Mapping[str, str]
) -> Attempt:
    """POST ``body`` to the target once, within its ``timeout_s``; never raises for the
    target's failures (refused, reset, slow, any status): they become an :class:`Attempt`."""
    timeout = aiohttp.ClientTimeout(total=target.timeout_s)
    try:
        # Redirects are not followed: a POST redirected becomes a GET to somewhere else.
        async with session.post(
            target.url, data=body, headers=dict(headers), timeout=timeout, allow_redirects=False
        ) as response:
            status = response.status
            text = "" if 200 <= status < 300 else await _excerpt(response)
            retry_after = parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
    except TimeoutError:
        return Attempt("retry", f"timed out after {target.timeout_s:g} s")
    except aiohttp.ClientConnectorError as exc:
        return Attempt("retry", f"cannot connect to {target.host} ({exc.os_error or exc})")
    except aiohttp.ClientError as exc:
        return Attempt("retry", f"{type(exc).__name__}: {exc}".rstrip(": "))
    reason = f"HTTP {status}" + (f": {text}" if text else "")
    return Attempt(verdict(status), reason, status, retry_after)


async def _excerpt(response: aiohttp.ClientResponse) -> str:
    try:
        raw = await asyncio.wait_for(response.content.read(BODY_EXCERPT * 4), 1.0)
    except (TimeoutError, aiohttp.ClientError):
        return ""
    return " ".join(raw.decode("utf-8", "replace").split())[:BODY_EXCERPT]


class DeadLetters:
    """Writes what a target gave up on to ``<prefix>.notify.dead-letter``, keyed by event id.

    The value is JSON: ``{"target", "target_kind", "reason", "status", "attempts", "source",
    "failed_at", "event"}`` (``event`` as published, ``source`` its ``topic/partition/offset``);
    the headers repeat ``target``, ``reason`` and ``attempts``.
    """

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    async def send(
        self,
        target: Target,
        event: Mapping[str, Any],
        attempt: Attempt,
        attempts: int,
        source: str,
    ) -> None:
        """Write one dead letter and wait for Kafka's acknowledgement."""
        letter = {
            "target": target.name,
            "target_kind": target.kind,
            "reason": attempt.reason,
            "status": attempt.status,
            "attempts": attempts,
            "source": source,
            "failed_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "event": dict(event),
        }
        headers = [
            ("target", target.name.encode()),
            ("reason", attempt.reason.encode()),
            ("attempts", str(attempts).encode()),
        ]
        await self.producer.send_and_wait(
            self.topic,
            orjson.dumps(letter),
            key=str(event.get("id", "")).encode(),
            headers=headers,
        )
        metrics.NOTIFY_DEAD_LETTERED.labels(target.name).inc()
