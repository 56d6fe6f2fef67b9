"""Real work under load against every service: many clients at once, clients that vanish."""

from __future__ import annotations

import asyncio
import time

from tests.robustness.checks import (
    PROMPT,
    RSS_MARGIN_MB,
    assert_clean_log,
    assert_serving,
    connect,
    log_mark,
    send_events,
    settled_rss,
    vanish,
)
from tests.robustness.targets import Target
from wyoming_core.client import describe

CONCURRENT = 50
VANISHING = 10
MAX_ROUNDS = 6


async def _fifty(target: Target) -> float:
    """50 real requests at once while another client keeps asking `describe`; the slowest describe."""
    done = asyncio.Event()
    slowest = 0.0

    async def prober() -> None:
        nonlocal slowest
        while not done.is_set():
            started = time.monotonic()
            await describe(target.uri, timeout=30)
            slowest = max(slowest, time.monotonic() - started)
            await asyncio.sleep(0.5)

    probe = asyncio.create_task(prober())
    try:
        results = await asyncio.gather(*(target.work() for _ in range(CONCURRENT)), return_exceptions=True)
    finally:
        done.set()
        await probe
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, f"{len(failures)} of {CONCURRENT} failed, e.g. {failures[0]!r}"
    return slowest


async def test_fifty_concurrent_connections_doing_real_work(target: Target) -> None:
    mark = log_mark(target)
    await target.work()  # warm: first-use allocations are not growth
    # Two bursts: memory may rise to what 50 clients need, but must not keep rising.
    slowest = await _fifty(target)
    rss_first = await settled_rss(target)
    slowest = max(slowest, await _fifty(target))
    rss_second = await settled_rss(target)
    # describe is never stuck behind the model (the bound is loose: the CPU is shared).
    assert slowest < PROMPT, f"describe took {slowest:.1f} s under load"
    assert rss_second <= rss_first + RSS_MARGIN_MB, (
        f"RSS kept growing: {rss_first:.0f} -> {rss_second:.0f} MB"
    )
    await assert_serving(target)
    assert_clean_log(target, mark)


async def _vanishing_clients(target: Target) -> None:
    async def one(delay: float) -> None:
        client = await connect(target)
        await send_events(client, target.stream_start)
        # Leave at different moments: before, while and after the service starts working.
        await asyncio.sleep(delay)
        await vanish(client)

    await asyncio.gather(*(one(0.05 * i) for i in range(VANISHING)))


async def test_clients_vanishing_mid_stream(target: Target) -> None:
    mark = log_mark(target)
    await target.work()
    rss: list[float] = []
    # Rounds until memory settles: allocator pools may grow to what 10 clients at once
    # need (a few rounds), but not round after round.
    while len(rss) < 3 or rss[-1] - rss[-3] > RSS_MARGIN_MB:
        assert len(rss) < MAX_ROUNDS, f"RSS kept growing round after round: {[round(r) for r in rss]} MB"
        await _vanishing_clients(target)
        # The work they started is dropped: the next real request is served normally.
        await target.work()
        await assert_serving(target)
        rss.append(await settled_rss(target))
    assert_clean_log(target, mark)
