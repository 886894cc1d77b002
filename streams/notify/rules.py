"""Which published events a target wants: severity levels, dimensions and filters (pure).

Severity says how much attention an event deserves, from its ``kind`` alone:

- ``info``: routine movement inside a top N (``entered``, ``dropped``, ``moved_up``,
  ``moved_down``) and streaks that go on (``leader_streak``, ``growth_streak``,
  ``country_growth_streak``).
- ``notice``: a change at the top or a large move: ``new_leader``, ``leader_change``,
  ``new_model_at_top``, ``surge``, ``drop``.
- ``warning``: the published numbers themselves changed: ``late_correction`` (a closed week's
  totals were corrected after its alerts went out).

A kind not listed here (a newer publisher) is ``info``, so it still reaches the targets that
take everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from aggregations.alerts import AlertKind
from aggregations.rankings import ChangeKind, Phase
from aggregations.totals import DIMENSIONS
from streams.store.names import ALERT_SUBJECTS

__all__ = [
    "DIMENSIONS",
    "KINDS",
    "PHASES",
    "SEVERITIES",
    "Filters",
    "Severity",
    "event_dimension",
    "severity_of",
]

Severity = Literal["info", "notice", "warning"]
#: The levels from least to most important.
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
PHASES: tuple[Phase, ...] = get_args(Phase)
#: Every kind of ranking change and alert the pipeline publishes.
KINDS: tuple[str, ...] = (*get_args(ChangeKind), *get_args(AlertKind))

_SEVERITY: dict[str, Severity] = {
    "entered": "info",
    "dropped": "info",
    "moved_up": "info",
    "moved_down": "info",
    "leader_streak": "info",
    "growth_streak": "info",
    "country_growth_streak": "info",
    "new_leader": "notice",
    "leader_change": "notice",
    "new_model_at_top": "notice",
    "surge": "notice",
    "drop": "notice",
    "late_correction": "warning",
}


def severity_of(event: Mapping[str, Any]) -> Severity:
    """The severity of a ranking change or alert (see the module's docstring)."""
    return _SEVERITY.get(str(event.get("kind", "")), "info")


def event_dimension(event: Mapping[str, Any]) -> str:
    """What the event is about: one of :data:`aggregations.totals.DIMENSIONS`.

    A ranking change names its ``dimension``; an alert's dimension is that of its subject
    (:data:`streams.store.names.ALERT_SUBJECTS`), and a late correction's is the dimension it
    corrected.
    """
    if event.get("type") != "alert":
        return str(event.get("dimension", ""))
    subject = ALERT_SUBJECTS.get(str(event.get("kind", "")), "")
    return str(event.get("dimension", "")) if subject == "dimension" else subject


@dataclass(frozen=True, slots=True)
class Filters:
    """What one target receives; ``None`` takes every value of that field."""

    kinds: frozenset[str] | None = None
    dimensions: frozenset[str] | None = None
    #: Applies to ranking changes; alerts have no phase and always pass it.
    phases: frozenset[str] | None = None
    min_severity: Severity = "info"

    def accepts(self, event: Mapping[str, Any]) -> bool:
        """Whether an event passes every filter."""
        if self.kinds is not None and event.get("kind") not in self.kinds:
            return False
        if self.dimensions is not None and event_dimension(event) not in self.dimensions:
            return False
        phase = event.get("phase")
        if self.phases is not None and phase is not None and phase not in self.phases:
            return False
        return SEVERITIES.index(severity_of(event)) >= SEVERITIES.index(self.min_severity)
