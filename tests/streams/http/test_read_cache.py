"""The read cache's rules without Redis: one computation per version, shared by concurrent
requests; a new version or the maximum age recomputes; validators and 304s."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from streams.http import read_cache
from streams.http.read_cache import ReadCache, Version, etag_matches
from streams.store.keys import RedisKeys


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def versions(monkeypatch: pytest.MonkeyPatch) -> list[Version]:
    """The version Redis would answer (the last item), and how often it was read."""
    current = [Version(b"v1", 1_795_010_587_000)]
    reads: list[Version] = []

    async def fake_read_version(client: Any, keys: RedisKeys) -> Version:
        await asyncio.sleep(0)
        reads.append(current[-1])
        return current[-1]

    monkeypatch.setattr(read_cache, "read_version", fake_read_version)
    current.append(current[0])
    return current


def cache(clock: Clock) -> ReadCache:
    """A cache checking the version every 0.1 s, answers at most 1 s old."""
    return ReadCache(None, RedisKeys("t"), check_s=0.1, max_age_s=1.0, clock=clock)  # type: ignore[arg-type]


async def test_concurrent_requests_share_one_computation_and_one_version_read(
    versions: list[Version],
) -> None:
    """Twenty requests at once compute the answer once; later ones hit the cache."""
    clock = Clock()
    answers = cache(clock)
    computed = 0

    async def compute() -> bytes:
        nonlocal computed
        computed += 1
        await asyncio.sleep(0.01)
        return b'{"n": 1}'

    request = make_mocked_request("GET", "/v1/overview")
    responses = await asyncio.gather(*(answers.answer(request, "k", compute) for _ in range(20)))
    assert computed == 1
    assert {r.body for r in responses} == {b'{"n": 1}'}
    again = await answers.answer(request, "k", compute)
    assert computed == 1 and again.headers["ETag"] == responses[0].headers["ETag"]
    assert again.headers["Cache-Control"] == "public, no-cache"
    assert again.headers["Last-Modified"].endswith(" GMT")


async def test_a_new_version_or_the_maximum_age_recomputes(versions: list[Version]) -> None:
    """Within the check interval the version is not read again; after it, a changed version
    recomputes; an unchanged one is trusted until the maximum age."""
    clock = Clock()
    answers = cache(clock)
    bodies = iter([b"1", b"2", b"3", b"4"])

    async def compute() -> bytes:
        return next(bodies)

    request = make_mocked_request("GET", "/v1/overview")
    assert (await answers.answer(request, "k", compute)).body == b"1"
    versions.append(Version(b"v2", None))
    clock.now += 0.05  # within the check interval: the old version is still trusted
    assert (await answers.answer(request, "k", compute)).body == b"1"
    clock.now += 0.1  # past it: the version is read again, it changed
    fresh = await answers.answer(request, "k", compute)
    assert fresh.body == b"2" and "Last-Modified" not in fresh.headers
    clock.now += 0.5
    assert (await answers.answer(request, "k", compute)).body == b"2"
    clock.now += 0.6  # the answer is now 1.1 s old: recomputed though the version is the same
    assert (await answers.answer(request, "k", compute)).body == b"3"


async def test_if_none_match_with_the_current_tag_is_a_304(versions: list[Version]) -> None:
    """A matching tag (also weak, in a list, or *) gets 304 without a body."""
    answers = cache(Clock())

    async def compute() -> bytes:
        return b"{}"

    tag = (await answers.answer(make_mocked_request("GET", "/"), "k", compute)).headers["ETag"]
    for header in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        request = make_mocked_request("GET", "/", headers={"If-None-Match": header})
        response = await answers.answer(request, "k", compute)
        assert response.status == 304 and response.body is None
        assert response.headers["ETag"] == tag
    request = make_mocked_request("GET", "/", headers={"If-None-Match": '"other"'})
    assert (await answers.answer(request, "k", compute)).status == 200


def test_etag_comparison_is_weak() -> None:
    """RFC 9110's weak comparison for If-None-Match."""
    assert etag_matches('W/"a"', '"a"') and etag_matches('"b", "a"', '"a"')
    assert not etag_matches('"ab"', '"a"')


async def test_an_error_is_not_cached(versions: list[Version]) -> None:
    """A computation that fails (404, Redis down) is tried again by the next request."""
    answers = cache(Clock())
    attempts = 0

    async def compute() -> bytes:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise LookupError("no data yet")
        return b"{}"

    request = make_mocked_request("GET", "/")
    with pytest.raises(LookupError):
        await answers.answer(request, "k", compute)
    assert (await answers.answer(request, "k", compute)).status == 200
    assert attempts == 2


async def test_an_answer_may_carry_its_own_content_headers(versions: list[Version]) -> None:
    """An export is cached like JSON answers but served with its content type and
    disposition; a 304 carries the validators only."""
    answers = cache(Clock())

    async def compute() -> bytes:
        return b"rank,app\r\n"

    headers = {"Content-Type": "text/csv; charset=utf-8", "Content-Disposition": "attachment"}
    response = await answers.answer(make_mocked_request("GET", "/"), "csv", compute, headers)
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == "attachment"
    assert response.headers["ETag"] and response.body == b"rank,app\r\n"
    request = make_mocked_request("GET", "/", headers={"If-None-Match": response.headers["ETag"]})
    not_modified = await answers.answer(request, "csv", compute, headers)
    assert not_modified.status == 304 and "Content-Disposition" not in not_modified.headers
