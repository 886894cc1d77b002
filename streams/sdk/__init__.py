"""The producer and subscriber SDK: what an application imports to send usage events to
tokenboard and to follow its ranking changes and alerts.

::

    from streams.sdk import Settings, UsageEvent, UsageProducer, subscribe

These names are the SDK's public API (``tests/streams/sdk/test_exports.py`` pins them); the
modules behind them may move.
"""

from aggregations.events import UsageEvent
from streams.sdk.producer import SyncUsageProducer, UsageProducer
from streams.sdk.subscriber import subscribe
from streams.sdk.tail import EventTail
from streams.settings import Settings

__all__ = [
    "EventTail",
    "Settings",
    "SyncUsageProducer",
    "UsageEvent",
    "UsageProducer",
    "subscribe",
]
