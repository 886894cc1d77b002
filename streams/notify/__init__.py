"""``tokenboard notify``: ranking changes and alerts delivered to webhooks and Slack.

- :mod:`~streams.notify.config`: the targets file (TOML or JSON), checked at start.
- :mod:`~streams.notify.rules`, :mod:`~streams.notify.formatting`, :mod:`~streams.notify.retry`:
  pure rules: severity and filters, the Slack line and request, backoff.
- :mod:`~streams.notify.ledger`: the ids each target was sent (Redis), across restarts.
- :mod:`~streams.notify.delivery`, :mod:`~streams.notify.lane`: one HTTP attempt, dead
  letters, and the per-target lane (own consumer group, queue, retries, commits).
- :mod:`~streams.notify.notifier`, :mod:`~streams.notify.command`: the lanes together, and
  the command.
"""

from streams.notify.config import NotifyConfig, Target, load_config, parse_config
from streams.notify.notifier import Notifier
from streams.notify.rules import Filters, severity_of

__all__ = [
    "Filters",
    "Notifier",
    "NotifyConfig",
    "Target",
    "load_config",
    "parse_config",
    "severity_of",
]
