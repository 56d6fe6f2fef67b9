"""Three real STT instances and eight clients, each with its own pool (as eight satellites
would have): with `balance`, the pools spread the turns by the load the instances report in
`describe`, not by their own turn counters alone (which would all start at the same one). And
an instance that answers `overloaded` is passed over within the same request."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from wyoming.event import Event

from discovery.pool import ServicePool
from tests.support.raw import RawClient
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


async def _info_event(port: int) -> Event:
    client = await RawClient.connect(port)
    try:
        await client.send("describe")
        return (await client.receive_until("info", timeout=30))[-1]
    finally:
        await client.close()


async def test_a_request_an_overloaded_instance_refuses_goes_to_another(
    three_stt: list[ServiceProcess], service_factory: list[ServiceProcess], tmp_path: Path
) -> None:
    """An instance with a long decode queue (one worker, --max-queue-wait 0.01) refuses at once;
    a replayable request (a whole clip) moves on to the next instance and is answered there, and
    the refusing instance is tried last for the next request."""
    busy = ServiceProcess(
        "wyoming_stt",
        *("--model", "tiny.en", "--language", "en", "--data-dir", str(tmp_path), "--cpu-threads", "1"),
        *("--workers", "1", "--no-partials", "--max-queue-wait", "0.01"),
    ).start()
    service_factory.append(busy)
    busy.wait_listening(60)
    await busy.wait_ready(240)
    other = three_stt[0]
    pcm, fmt = piper_speech(SENTENCE)
    clip = silence(0.3, fmt) + pcm + silence(0.7, fmt)
    wire = {"rate": fmt.rate, "width": fmt.width, "channels": fmt.channels}
    long_speech = b"".join(pcm + silence(0.1, fmt) for _ in range(5))  # one 30 s window

    async def upload() -> RawClient:
        """A long request sent at once: its final decode keeps the only worker busy."""
        client = await RawClient.connect(busy.port)
        await client.send("audio-start", wire)
        for offset in range(0, len(long_speech), fmt.bytes_per_second):
            await client.send("audio-chunk", wire, long_speech[offset : offset + fmt.bytes_per_second])
        await client.send("audio-stop")
        return client

    uploads = [await upload() for _ in range(6)]
    done = [asyncio.create_task(u.receive_until("transcript", timeout=240)) for u in uploads]

    async def decoding() -> bool:
        load = (await _info_event(busy.port)).data["load"]
        return bool(load["running"] + load["queued"] >= 1)

    while not await decoding():  # the uploads' audio is still being taken in
        assert not all(d.done() for d in done), "the uploads were answered before any was seen decoding"
        await asyncio.sleep(0.05)
    tried: list[list[str]] = []
    text = ""
    while not all(d.done() for d in done):
        attempt: list[str] = []
        pool = ServicePool("asr", [busy.uri, other.uri])  # by turn alone: the busy one first

        async def request(uri: str, attempt: list[str] = attempt) -> Transcription:
            attempt.append(uri)
            return await transcribe(uri, clip, fmt, language="en", timeout=240)

        result = await pool.call(request, replayable=True)
        tried.append(attempt)
        if attempt == [busy.uri, other.uri]:
            text = result.text
            assert pool.order()[-1] == busy.uri  # the overloaded one is tried last from now on
            break
    assert text, f"the busy instance never refused while six long decodes were queued: {tried}"
    assert wer(SENTENCE, text) <= 0.3, text
    await asyncio.wait_for(asyncio.gather(*done), 240)  # the queued requests still got theirs
    for client in uploads:
        await client.close()


def test_the_satellite_and_the_voice_client_balance_stt_and_tts() -> None:
    """What the test above proves is what they use: STT and TTS requests go by load, the
    conversation stays by turn (the service keeps its memory)."""
    from discovery.voice import VoiceClient
    from satellite.services import Services
    from satellite.settings import TurnSettings

    two = ("tcp://127.0.0.1:1", "tcp://127.0.0.1:2")
    pools = Services(TurnSettings(stt_uris=two, tts_uris=two, handle_uris=two)).pools
    client = VoiceClient(stt=list(two), tts=list(two), handle=list(two))
    assert pools["asr"].balance and pools["tts"].balance and not pools["handle"].balance
    assert client.stt.balance and client.tts.balance and not client.handle.balance
