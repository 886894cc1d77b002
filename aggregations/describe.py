"""One readable line for a published ranking change or alert (the CLI's ``watch`` and the
read API's live feed show the same text)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from aggregations.report import format_tokens

__all__ = ["describe_event"]

_ARROWS = {"new_leader": "★", "entered": "↑", "moved_up": "↑", "moved_down": "↓", "dropped": "↓"}


def describe_event(event: Mapping[str, Any], name: str | None = None) -> str:
    """One readable line for a ranking change or an alert.

    ``2026-W47 model    ↑ DeepSeek-V4-Flash moved up to #1 (was #2)  3.43T``
    """
    week = event.get("week", "?")
    if event.get("type") == "alert":
        return f"{week} alert    ! {event.get('message', event.get('kind'))}"
    if event.get("type") != "ranking_change":
        return f"{week} {event.get('type', 'event')}  {orjson.dumps(event).decode()}"
    kind = event.get("kind", "")
    who = name or str(event.get("member"))
    old, new = event.get("old_rank"), event.get("new_rank")
    was = f" (was #{old})" if old is not None else ""
    text = {
        "new_leader": f"{who} is the new #1{was or ' (new)'}",
        "entered": f"{who} entered at #{new}{was}",
        "moved_up": f"{who} moved up to #{new}{was}",
        "moved_down": f"{who} moved down to #{new}{was}",
        "dropped": f"{who} dropped out of the top{was}",
    }.get(kind, f"{who} {kind}")
    tokens = event.get("tokens")
    line = f"{week} {event.get('dimension', ''):<8} {_ARROWS.get(kind, '·')} {text}"
    if isinstance(tokens, int):
        line += f"  {format_tokens(tokens)}"
    return line + ("  [final]" if event.get("phase") == "final" else "")
