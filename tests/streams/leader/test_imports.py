"""The names other packages import from streams.leader stay importable there."""

from __future__ import annotations


def test_public_names_of_the_ranker_module() -> None:
    """Ranker and its published helpers are importable from streams.leader.ranker."""
    from streams.leader import ranker

    for name in ranker.__all__:
        assert hasattr(ranker, name), name
    assert callable(ranker.Ranker.tick)
    assert callable(ranker.Ranker.forget)
    assert callable(ranker.Ranker.delete_week)


def test_state_log_module() -> None:
    """RankerStateLog is importable from streams.leader.state_log."""
    from streams.leader.state_log import RankerStateLog

    assert callable(RankerStateLog.load)
    assert callable(RankerStateLog.put)
