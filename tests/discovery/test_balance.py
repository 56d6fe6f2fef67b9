"""Three real STT instances and eight clients, each with its own pool (as eight satellites
would have): with `balance`, the pools spread the turns by the load the instances report in
`describe`, not by their own turn counters alone (which would all start at the same one)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from discovery.pool import ServicePool
from tests.support.services import ServiceProcess
from tests.support.speech import piper_speech, silence
from tests.support.wer import wer
from wyoming_core.client import Transcription, transcribe

pytestmark = pytest.mark.timeout(600)

SENTENCE = "Please turn off all the lights in the living room and lock the front door."
CLIENTS = 8


@pytest.fixture(scope="module")
async def three_stt(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[ServiceProcess]]:
    data_dir = Path(tmp_path_factory.mktemp("stt-balance"))
    args = ("--model", "tiny.en", "--language", "en", "--data-dir", str(data_dir), "--cpu-threads", "1")
    services = [ServiceProcess("wyoming_stt", *args, "--no-partials").start() for _ in range(3)]
    try:
        for service in services:
            service.wait_listening(60)
        for service in services:
            await service.wait_ready(240)
        yield services
    finally:
        for service in services:
            service.stop()


async def test_eight_clients_spread_by_the_load_instances_report(
    three_stt: list[ServiceProcess],
) -> None:
    uris = [s.uri for s in three_stt]
    pcm, fmt = piper_speech(SENTENCE)
    # Long enough that every client is still speaking when the last one starts.
    audio = silence(0.3, fmt) + pcm + silence(0.3, fmt) + pcm + silence(0.7, fmt)
    served: list[str] = []

    async def satellite(index: int) -> Transcription:
        await asyncio.sleep(0.5 * index)  # one after another, each while the others still speak
        pool = ServicePool("asr", uris, balance=True)

        async def request(uri: str) -> Transcription:
            served.append(uri)
            return await transcribe(uri, audio, fmt, language="en", realtime=True, timeout=240)

        return await pool.call(request)

    results = await asyncio.wait_for(asyncio.gather(*(satellite(i) for i in range(CLIENTS))), 500)
    assert all(wer(f"{SENTENCE} {SENTENCE}", r.text) <= 0.3 for r in results), [r.text for r in results]
    counts = Counter(served)
    assert len(served) == CLIENTS, served  # no request had to be tried twice
    # Eight over three: 3, 3 and 2, whichever instance the first pool started at.
    assert sorted(counts[u] for u in uris) == [2, 3, 3], counts


async def test_without_balance_fresh_pools_start_at_one_instance(
    three_stt: list[ServiceProcess],
) -> None:
    """What `balance` is for: pools that start together by turn alone pick the same instance."""
    uris = [s.uri for s in three_stt]
    first = [ServicePool("asr", uris).order()[0] for _ in range(CLIENTS)]
    assert set(first) == {uris[0]}
