"""Two real STT instances found by zeroconf: turns spread over both, and fail over.

Within a turn the request moves on when an instance cannot be connected to (nothing was
sent yet); an instance that hangs mid-request fails that turn, and the next turn goes to
the other one.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from discovery.browse import Browser
from discovery.pool import ServicePool
from tests.support.services import ServiceProcess
from tests.support.speech import piper_speech
from wyoming_core.client import ServiceTimeout, Transcription, transcribe

pytestmark = pytest.mark.timeout(400)


@pytest.fixture(scope="module")
async def two_stt(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[ServiceProcess]]:
    token = uuid.uuid4().hex[:8]
    data_dir = Path(tmp_path_factory.mktemp("stt-failover"))
    services = [
        ServiceProcess(
            "wyoming_stt",
            "--model",
            "tiny.en",
            "--language",
            "en",
            "--data-dir",
            str(data_dir),
            "--cpu-threads",
            "1",
            "--zeroconf",
            f"stt-{name}-{token}",
        ).start()
        for name in ("a", "b")
    ]
    try:
        for service in services:
            service.wait_listening(60)
        for service in services:
            await service.wait_ready(240)
        yield services
    finally:
        for service in services:
            if service.proc is not None and service.proc.poll() is None:
                service.proc.send_signal(signal.SIGCONT)
            service.stop()


async def test_turns_spread_and_fail_over(two_stt: list[ServiceProcess]) -> None:
    a, b = two_stt
    pcm, fmt = piper_speech("What time is it?")
    async with Browser(["127.0.0.1"], recheck_interval=0) as browser:
        await browser.wait_for(
            lambda found: {a.uri, b.uri} <= {s.uri for s in found if s.offers_kind("asr") and s.answering},
            timeout=60,
        )
        # Only our two instances, whatever else runs on this machine.
        ours = {a.uri, b.uri}
        pool = ServicePool("asr", browser=browser, where=lambda s: s.uri in ours, retry_after=300)
        assert set(pool.uris()) == ours

        tried: list[str] = []

        async def turn(uri: str, hang_timeout: float = 60.0) -> Transcription:
            tried.append(uri)
            return await transcribe(uri, pcm, fmt, timeout=hang_timeout)

        # Round-robin: two turns, one on each instance.
        results = [await pool.call(turn) for _ in range(2)]
        assert sorted(tried) == sorted(ours)
        assert all("time" in r.text.lower() for r in results), results

        # A hangs (stopped, so it still accepts connections): the turn that meets it fails
        # with a timeout, and from then on turns go to B.
        assert a.proc is not None
        a.proc.send_signal(signal.SIGSTOP)
        try:
            outcomes = []
            for _ in range(3):
                tried.clear()
                try:
                    result = await pool.call(lambda uri: turn(uri, 5.0 if uri == a.uri else 60.0))
                    outcomes.append((tried[:], result.text))
                except ServiceTimeout:
                    outcomes.append((tried[:], "timeout"))
            timeouts = [o for o in outcomes if o[1] == "timeout"]
            assert len(timeouts) <= 1 and all(o[0] == [a.uri] for o in timeouts), outcomes
            assert pool.is_failed(a.uri)
            assert outcomes[-1][0] == [b.uri] and "time" in outcomes[-1][1].lower(), outcomes
        finally:
            a.proc.send_signal(signal.SIGCONT)

        # A is gone for good (killed: no goodbye, still listed): the turn that tries it first
        # moves on to B at once, within the same turn.
        pool.mark_ok(a.uri)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        for _ in range(2):
            tried.clear()
            result = await pool.call(turn)
            assert tried[-1] == b.uri and "time" in result.text.lower()
            if tried[0] == a.uri:
                assert tried == [a.uri, b.uri]
                break
        else:
            pytest.fail("the killed instance was never tried first")
        assert pool.is_failed(a.uri)
