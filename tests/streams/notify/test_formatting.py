"""The Slack line of each event, and what each kind of target is sent."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from aggregations.alerts import late_correction_alert
from aggregations.rankings import change_id
from streams.notify.config import parse_config
from streams.notify.formatting import event_summary, request_body, request_headers, slack_text


def change(kind: str, old: int | None, new: int | None, **overrides: Any) -> dict[str, Any]:
    """A ranking change of the model board of 2026-W47."""
    event = {
        "id": change_id("model", "2026-W47", "live", kind, "deepseek/deepseek-v4-flash", old, new),
        "type": "ranking_change",
        "kind": kind,
        "dimension": "model",
        "week": "2026-W47",
        "phase": "live",
        "member": "deepseek/deepseek-v4-flash",
        "old_rank": old,
        "new_rank": new,
        "tokens": 3_430_000_000_000,
    }
    return {**event, **overrides}


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (
            change("new_leader", None, 1),
            "🥇 DeepSeek-V4-Flash is the new #1 model in 2026-W47 (3.43T tokens)",
        ),
        (
            change("new_leader", 2, 1, phase="final"),
            "🥇 DeepSeek-V4-Flash is the new #1 model in 2026-W47"
            " (3.43T tokens, was #2, final ranking)",
        ),
        (
            change("moved_up", 4, 2),
            "↑2 DeepSeek-V4-Flash is now the #2 model in 2026-W47 (3.43T tokens, was #4)",
        ),
        (
            change("moved_down", 1, 3, tokens=28_900_000_000_000),
            "↓2 DeepSeek-V4-Flash is now the #3 model in 2026-W47 (28.9T tokens, was #1)",
        ),
        (
            change("entered", None, 7, tokens=900_000_000_000),
            "🆕 DeepSeek-V4-Flash entered the top models at #7 in 2026-W47 (900B tokens)",
        ),
        (
            change("dropped", 6, None, tokens=2_066_000_000_000),
            "👋 DeepSeek-V4-Flash dropped out of the top models in 2026-W47"
            " (was #6 with 2.066T tokens)",
        ),
        (
            change("new_leader", None, 1, dimension="country", member="CN"),
            "🥇 China is the new #1 country in 2026-W47 (3.43T tokens)",
        ),
    ],
)
def test_slack_lines_of_ranking_changes(event: dict[str, Any], text: str) -> None:
    """Every change kind reads as one sentence with the report's units and arrows."""
    name = "China" if event["dimension"] == "country" else "DeepSeek-V4-Flash"
    assert slack_text(event, name) == text


def test_slack_lines_of_alerts_keep_the_pipeline_message() -> None:
    """An alert is its kind's mark, the week and the message the pipeline wrote."""
    alert = late_correction_alert("2026-W47", "model", 2, 1_500_000)
    assert slack_text(alert) == (
        "⚠️ 2026-W47: 2 late events for 2026-W47 arrived after the week closed;"
        " model totals corrected by 1.5M tokens."
    )


def test_slack_text_escapes_its_control_characters() -> None:
    """``&``, ``<`` and ``>`` in a name cannot become Slack links or mentions."""
    text = slack_text(change("new_leader", None, 1), "<!channel> A&B")
    assert text.startswith("🥇 &lt;!channel&gt; A&amp;B is the new #1")


def test_without_a_display_name_the_member_id_is_used() -> None:
    """A name that could not be looked up falls back to the id."""
    assert "deepseek/deepseek-v4-flash is the new #1" in slack_text(change("new_leader", None, 1))


def test_each_kind_of_target_gets_its_body_and_the_event_headers() -> None:
    """A webhook gets the event as published, Slack ``{"text"}``; both the id header, and a
    target's own headers win over the defaults."""
    headers = {"User-Agent": "x"}
    webhook_entry = {"name": "w", "kind": "webhook", "url": "https://w.test/", "headers": headers}
    slack_entry = {"name": "s", "kind": "slack", "url": "https://s.test/"}
    config = parse_config({"targets": [webhook_entry, slack_entry]})
    webhook, slack = config.targets
    event = change("new_leader", None, 1)
    raw = orjson.dumps(event)
    assert request_body(webhook, raw, event, "N") == raw
    assert orjson.loads(request_body(slack, raw, event, "N")) == {"text": slack_text(event, "N")}
    sent = request_headers(webhook, event)
    assert sent["X-Tokenboard-Event-Id"] == event["id"]
    assert sent["X-Tokenboard-Severity"] == "notice"
    assert (sent["User-Agent"], sent["Content-Type"]) == ("x", "application/json")


def test_the_progress_label_names_kind_week_member_and_id() -> None:
    """Progress lines say what was delivered in a few words."""
    event = change("moved_up", 4, 2, id="3f2a9c1e5b")
    assert event_summary(event) == (
        "ranking_change moved_up 2026-W47 deepseek/deepseek-v4-flash (3f2a9c1e)"
    )
