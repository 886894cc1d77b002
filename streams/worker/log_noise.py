"""Faust's messages that alarm without calling for action, logged at INFO once and at DEBUG
after that.

After a rebalance Faust logs ERROR "Stream has not started processing TP(...)" with a block
of advice for every partition a worker took over, although the stream catches up on its own;
while a joining worker restores its tables, every record that waits for Faust's producer
logs WARNING "producer buffer full". Counts are exact either way (RELIABILITY.md).
"""

from __future__ import annotations

import logging

__all__ = ["QUIET_FAUST_LOGGERS", "FaustNoise", "quiet_faust_noise"]

#: logger name -> (start of the message, what an operator reads the first time)
NOISE: dict[str, tuple[tuple[str, str], ...]] = {
    "faust.transport.drivers.aiokafka": (
        (
            "Stream has not started processing",
            "a partition taken over in a rebalance has not been processed yet; it catches "
            "up by itself (further such messages at DEBUG)",
        ),
        (
            "Stream stopped processing, or is slow",
            "a stream partition is idle or slow; usual while a backlog is folded (further "
            "such messages at DEBUG)",
        ),
    ),
    "faust.transport.producer": (
        (
            "producer buffer full",
            "changelog writes are waiting for Kafka; usual while a worker restores or "
            "folds a backlog (further such messages at DEBUG)",
        ),
    ),
}
QUIET_FAUST_LOGGERS = tuple(NOISE)


class FaustNoise(logging.Filter):
    """Turns the first record of each noisy kind into one INFO line, later ones into DEBUG."""

    def __init__(self, kinds: tuple[tuple[str, str], ...]) -> None:
        super().__init__()
        self.kinds = kinds
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        for start, explanation in self.kinds:
            if not message.lstrip().startswith(start):
                continue
            if start in self.seen:
                record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            else:
                self.seen.add(start)
                record.levelno, record.levelname = logging.INFO, "INFO"
                record.msg, record.args = f"{start}: {explanation}", ()
            # A handler's own level is checked after this filter ran.
            return logging.getLogger(record.name).isEnabledFor(record.levelno)
        return True


def quiet_faust_noise() -> None:
    """Install the filters on the loggers that emit the noise (once per process)."""
    for name, kinds in NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, FaustNoise) for f in logger.filters):
            logger.addFilter(FaustNoise(kinds))
