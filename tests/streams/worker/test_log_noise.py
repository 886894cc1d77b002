"""Faust's alarming-but-harmless messages: one INFO line, then DEBUG."""

from __future__ import annotations

import logging

import pytest

from streams.worker.log_noise import quiet_faust_noise


def test_rebalance_noise_is_info_once_then_debug(caplog: pytest.LogCaptureFixture) -> None:
    """ "Stream has not started processing" is logged once at INFO with an explanation, then
    at DEBUG; an unrelated ERROR stays an ERROR."""
    quiet_faust_noise()
    logger = logging.getLogger("faust.transport.drivers.aiokafka")
    with caplog.at_level(logging.DEBUG, logger="faust.transport.drivers.aiokafka"):
        for partition in range(3):
            logger.error("\nStream has not started processing %r (started %s).", partition, "1s")
        logger.error("Cannot commit: broker gone")
    levels = [(r.levelname, r.getMessage()[:40]) for r in caplog.records]
    assert levels[0][0] == "INFO" and "catches up by itself" in caplog.records[0].getMessage()
    assert [level for level, _ in levels[1:3]] == ["DEBUG", "DEBUG"]
    assert levels[3] == ("ERROR", "Cannot commit: broker gone")


def test_producer_buffer_noise_is_dropped_at_warning_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker at the default level (WARNING) prints none of a hundred "producer buffer
    full" warnings: the first becomes INFO, the rest DEBUG."""
    quiet_faust_noise()
    logger = logging.getLogger("faust.transport.producer")
    logger.setLevel(logging.WARNING)
    try:
        with caplog.at_level(logging.WARNING):
            for size in range(100):
                logger.warning(f"producer buffer full size {size}")
        assert caplog.records == []
    finally:
        logger.setLevel(logging.NOTSET)


def test_installing_twice_adds_one_filter() -> None:
    """quiet_faust_noise() is idempotent."""
    quiet_faust_noise()
    quiet_faust_noise()
    assert len(logging.getLogger("faust.transport.producer").filters) == 1
