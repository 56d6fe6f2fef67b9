"""Round-robin and failover in `ServicePool`, with stand-in requests (no network)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from discovery.pool import ServicePool
from wyoming_core.client import ConnectFailed, ServiceError, ServiceTimeout, ServiceUnavailable

A, B, C = "tcp://a:1", "tcp://b:1", "tcp://c:1"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_round_robin_spreads_turns() -> None:
    pool = ServicePool("stt", [A, B, C])
    used = [await pool.call(_echo) for _ in range(6)]
    assert used == [A, B, C, A, B, C]


async def _echo(uri: str) -> str:
    return uri


async def test_connect_failure_moves_on_within_the_turn_and_is_remembered() -> None:
    clock = Clock()
    pool = ServicePool("asr", [A, B], retry_after=30, clock=clock)
    tried: list[str] = []

    async def request(uri: str) -> str:
        tried.append(uri)
        if uri == A:
            raise ConnectFailed("refused")
        return uri

    assert await pool.call(request) == B
    assert tried == [A, B] and pool.is_failed(A)
    # Next turns start with the healthy instance, whatever the rotation says.
    tried.clear()
    assert [await pool.call(request) for _ in range(2)] == [B, B]
    assert tried == [B, B]
    # After retry_after, A is tried again in its turn.
    clock.now = 31
    assert not pool.is_failed(A)


async def test_failure_after_start_is_raised_and_the_next_turn_goes_elsewhere() -> None:
    pool = ServicePool("asr", [A, B])

    async def request(uri: str) -> str:
        if uri == A:
            raise ServiceTimeout("hung")
        return uri

    with pytest.raises(ServiceTimeout):
        await pool.call(request)
    assert pool.is_failed(A)
    assert await pool.call(request) == B
    assert await pool.call(request) == B
    # A replayable request (text, a whole clip) may go on to the next instance at once.
    pool2 = ServicePool("asr", [A, B])
    assert await pool2.call(request, replayable=True) == B


async def test_refused_requests_do_not_mark_the_instance() -> None:
    pool = ServicePool("asr", [A, B])

    async def request(uri: str) -> str:
        raise ServiceError("unsupported-language", "no Klingon")

    with pytest.raises(ServiceError):
        await pool.call(request)
    assert not pool.is_failed(A)


async def test_nothing_to_ask() -> None:
    with pytest.raises(ServiceUnavailable, match="No tts service"):
        await ServicePool("tts").call(_echo)

    async def refuse(uri: str) -> str:
        raise ConnectFailed(f"{uri} refused")

    with pytest.raises(ServiceUnavailable, match="tried tcp://a:1, tcp://b:1"):
        await ServicePool("tts", [A, B]).call(refuse)


async def test_stream_fails_over_only_before_anything_was_yielded() -> None:
    pool = ServicePool("asr", [A, B])

    async def request(uri: str) -> AsyncIterator[str]:
        if uri == A:
            raise ConnectFailed("refused")
        yield f"{uri}:1"
        yield f"{uri}:2"

    assert [item async for item in pool.stream(request)] == [f"{B}:1", f"{B}:2"]

    async def breaks(uri: str) -> AsyncIterator[str]:
        yield uri
        raise ServiceUnavailable("lost")

    pool = ServicePool("asr", [A, B])
    seen: list[str] = []
    with pytest.raises(ServiceUnavailable, match="lost"):
        async for item in pool.stream(breaks):
            seen.append(item)
    assert seen == [A] and pool.is_failed(A)


async def test_sticky_stays_with_the_instance_that_answered_until_it_fails() -> None:
    """A conversation's history lives in one instance: a sticky pool keeps to it."""
    pool = ServicePool("handle", [A, B, C], sticky=True)
    down: set[str] = set()

    async def request(uri: str) -> str:
        if uri in down:
            raise ConnectFailed("refused")
        return uri

    assert [await pool.call(request) for _ in range(3)] == [A, A, A]
    down.add(A)
    assert [await pool.call(request) for _ in range(3)] == [B, B, B]


async def test_a_failed_instance_is_asked_before_it_gets_a_request_again() -> None:
    """Past `retry_after` a failed instance is probed first: while the probe fails no request
    goes to it (a hung instance costs no further turn); once it answers it is back in turn."""
    clock = Clock()
    probed: list[str] = []
    hung = {A}

    async def probe(uri: str) -> None:
        probed.append(uri)
        if uri in hung:
            raise ServiceTimeout("hung")

    pool = ServicePool("asr", [A, B], retry_after=30, probe=probe, clock=clock)
    tried: list[str] = []

    async def request(uri: str) -> str:
        tried.append(uri)
        if uri in hung:
            raise ServiceTimeout("hung")
        return uri

    with pytest.raises(ServiceTimeout):
        await pool.call(request)  # the one turn that meets the hung instance
    assert [await pool.call(request) for _ in range(2)] == [B, B] and probed == []
    clock.now = 31
    tried.clear()
    assert [await pool.call(request) for _ in range(2)] == [B, B]
    assert tried == [B, B] and probed == [A]  # asked once, not trusted with a request
    clock.now = 62
    hung.clear()
    assert sorted([await pool.call(request) for _ in range(2)]) == [A, B]
    assert not pool.is_failed(A)
