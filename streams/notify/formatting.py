"""What ``tokenboard notify`` posts: the Slack line, the webhook body and headers (pure).

Units and rank arrows come from the report's helpers (:func:`~aggregations.report.format_tokens`,
:func:`~aggregations.report.rank_move`), the ones ``tokenboard top`` and ``watch`` print, so a
Slack channel reads ``3.43T`` and ``↑1`` as the terminal does::

    🥇 DeepSeek-V4-Flash is the new #1 model in 2026-W47 (3.43T tokens, was #2)
    ↓1 Hy3 preview is now the #2 model in 2026-W47 (3.07T tokens, was #1)
    📈 2026-W47: Global token usage grew for the 5th consecutive week, to 28.9T (+7.4%).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from aggregations.describe import describe_event
from aggregations.report import format_tokens, rank_move
from streams.notify.config import Target
from streams.notify.rules import severity_of

__all__ = ["event_summary", "request_body", "request_headers", "slack_text"]

USER_AGENT = "tokenboard-notify"
_PLURALS = {"model": "models", "country": "countries", "vendor": "vendors", "app": "apps"}
_ALERT_MARKS = {
    "surge": "📈",
    "drop": "📉",
    "growth_streak": "📈",
    "country_growth_streak": "📈",
    "leader_change": "🏁",
    "leader_streak": "👑",
    "new_model_at_top": "🥇",
    "late_correction": "⚠️",
}


def slack_text(event: Mapping[str, Any], name: str | None = None) -> str:
    """One readable line for a Slack message (``name``: the display name of the member).

    Alerts keep the message the pipeline wrote; ranking changes are told as a sentence.
    ``&``, ``<`` and ``>`` are escaped, as Slack's message format requires.
    """
    week = event.get("week", "?")
    if event.get("type") == "alert":
        kind = str(event.get("kind", ""))
        line = f"{_ALERT_MARKS.get(kind, '🔔')} {week}: {event.get('message') or kind}"
    elif event.get("type") == "ranking_change":
        line = _ranking_line(event, name or str(event.get("member", "?")), week)
    else:
        line = describe_event(event, name)
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _ranking_line(event: Mapping[str, Any], who: str, week: str) -> str:
    kind = event.get("kind")
    dimension = str(event.get("dimension", ""))
    plural = _PLURALS.get(dimension, dimension)
    old, new = event.get("old_rank"), event.get("new_rank")
    tokens = event.get("tokens")
    amount = f"{format_tokens(tokens)} tokens" if isinstance(tokens, int) else ""
    was = f"was #{old}" if old is not None else ""
    final = "final ranking" if event.get("phase") == "final" else ""
    if kind == "new_leader":
        text, details = f"🥇 {who} is the new #1 {dimension}", [amount, was]
    elif kind in ("moved_up", "moved_down"):
        text, details = f"{rank_move(new, old)} {who} is now the #{new} {dimension}", [amount, was]
    elif kind == "entered":
        text, details = f"🆕 {who} entered the top {plural} at #{new}", [amount, was]
    elif kind == "dropped":
        with_tokens = f"{was} with {amount}" if was and amount else was or amount
        text, details = f"👋 {who} dropped out of the top {plural}", [with_tokens]
    else:
        text, details = f"{who} {kind}", [amount]
    inside = ", ".join(part for part in [*details, final] if part)
    return f"{text} in {week}" + (f" ({inside})" if inside else "")


def request_body(target: Target, raw: bytes, event: Mapping[str, Any], name: str | None) -> bytes:
    """The POST body: the event as published (``webhook``), or ``{"text": ...}`` (``slack``)."""
    if target.kind == "slack":
        return orjson.dumps({"text": slack_text(event, name)})
    return raw


def request_headers(target: Target, event: Mapping[str, Any]) -> dict[str, str]:
    """The POST headers: JSON, the event's id and severity, then the target's own headers."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        # Lets a receiver drop a repeat itself, should one ever get through (see the README).
        "X-Tokenboard-Event-Id": str(event.get("id", "")),
        "X-Tokenboard-Severity": severity_of(event),
        **target.headers,
    }


def event_summary(event: Mapping[str, Any]) -> str:
    """A short label for progress lines: ``alert surge 2026-W47 openai/gpt-5.1 (3f2a9c1e)``."""
    about = event.get("member") or event.get("subject") or "?"
    kind = f"{event.get('type', 'event')} {event.get('kind', '?')}"
    return f"{kind} {event.get('week', '?')} {about} ({str(event.get('id', ''))[:8]})"
