"""Vendors are found whatever their case (issue 17, item 10); model ids stay exact."""

from __future__ import annotations

import pytest

from streams.store.state import MemberNotFound, match_member

KNOWN = ["OpenAI", "DeepSeek", "Mistral AI", "openai/gpt-5.1"]


@pytest.mark.parametrize("given", ["openai", "OpenAI", "OPENAI", "oPeNaI"])
def test_a_vendor_is_found_whatever_its_case(given: str) -> None:
    """Any spelling of OpenAI's case finds OpenAI."""
    assert match_member("vendor", given, KNOWN) == "OpenAI"
    assert match_member("vendor", "mistral ai", KNOWN) == "Mistral AI"


def test_the_exact_spelling_wins_and_unknown_ones_pass_through() -> None:
    """Two vendors differing in case: the exact one is taken; an unknown name comes back as is
    (the caller says it is not found)."""
    both = [*KNOWN, "openai"]
    assert match_member("vendor", "openai", both) == "openai"
    assert match_member("vendor", "OpenAI", both) == "OpenAI"
    assert match_member("vendor", "nobody", both) == "nobody"


def test_an_ambiguous_spelling_names_the_candidates() -> None:
    """Neither exact: both spellings are named rather than one picked silently."""
    with pytest.raises(MemberNotFound, match="did you mean 'OpenAI' or 'openai'"):
        match_member("vendor", "OPENAI", [*KNOWN, "openai"])


def test_model_ids_stay_exact() -> None:
    """Model ids are case-sensitive ids, not names."""
    assert match_member("model", "OpenAI/GPT-5.1", KNOWN) == "OpenAI/GPT-5.1"
