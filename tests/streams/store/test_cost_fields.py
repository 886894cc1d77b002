"""How the read side reads the cost fields of a member or total hash."""

from __future__ import annotations

import pytest

from aggregations.errors import InvalidInput
from streams.store.queries import check_order, cost_of


def test_a_priced_hash_gives_its_cost_and_unpriced_tokens() -> None:
    """Cost known, a lower bound with some unpriced tokens, unknown with all unpriced."""
    assert cost_of({"cost_micro_usd": "42", "unpriced_tokens": "0"}, 100) == (42, 0)
    assert cost_of({"cost_micro_usd": "42", "unpriced_tokens": "10"}, 100) == (42, 10)
    assert cost_of({"cost_micro_usd": "0", "unpriced_tokens": "100"}, 100) == (None, 100)


def test_a_hash_of_a_version_without_cost_is_all_unpriced() -> None:
    """No cost fields: nothing was priced, so the cost is unknown, not 0."""
    assert cost_of({"tokens": "100"}, 100) == (None, 100)
    assert cost_of({}, 0) == (0, 0)


def test_boards_rank_by_tokens_or_spend_only() -> None:
    """``by`` is tokens or spend; anything else is the caller's mistake (a 400)."""
    assert check_order("spend") == "spend"
    with pytest.raises(InvalidInput, match="tokens, spend"):
        check_order("euros")
