"""The STT under load: what runs first, what is shed, and when a new request is refused.

Each test runs its own service with one decode worker, so the order of decodes is what a client
sees; the deadlines are generous (the machine may be busy) and no test holds a timing target.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from wyoming.event import Event

from tests.support.raw import RawClient
from tests.support.services import ServiceProcess
from tests.support.speech import piper_speech, silence
from tests.support.wer import wer
from wyoming_core.audio import AudioFormat
from wyoming_core.client import ServiceError, describe, transcribe
from wyoming_core.errors import OVERLOADED

LONG = 300.0  # seconds: a long decode on a busy machine
SHORT = "Turn on the lights in the kitchen."
STREAMED = [
    "What is the weather like tomorrow?",
    "Set a timer for ten minutes please.",
    "Play some relaxing music in the living room.",
]
_LONG_SENTENCES = [
    "Please remind me to water the plants in the garden tomorrow morning before it gets hot.",
    "Then tell me the weather for the weekend and whether I need an umbrella on Saturday.",
    "After that read me the shopping list, one item after the other, slowly and in detail.",
    "Switch off the lights in the kitchen and the hallway when everybody has gone to bed.",
]


def _long_speech(sentences: int) -> tuple[bytes, AudioFormat]:
    """Speech without a pause long enough to end it: about 5 s a sentence."""
    parts = []
    for n in range(sentences):
        pcm, fmt = piper_speech(_LONG_SENTENCES[n % len(_LONG_SENTENCES)], length_scale=0.9 + 0.05 * (n % 4))
        parts.append(pcm + silence(0.1, fmt))
    return b"".join(parts), fmt


async def _start(service_factory: list[ServiceProcess], data_dir: Path, *args: str) -> ServiceProcess:
    service = ServiceProcess(
        "wyoming_stt",
        "--model",
        "base",
        "--data-dir",
        str(data_dir),
        "--language",
        "en",
        "--workers",
        "1",
        *args,
    ).start()
    service_factory.append(service)
    service.wait_listening()
    await service.wait_ready(timeout=LONG)
    return service


class Upload:
    """A client that sends all its audio at once, then audio-stop, and notes when its
    transcript arrived."""

    def __init__(self, client: RawClient, audio: bytes, fmt: AudioFormat) -> None:
        self.client = client
        self.audio = audio
        self.fmt = {"rate": fmt.rate, "width": fmt.width, "channels": fmt.channels}
        self.text = ""
        self.arrived = 0.0

    @classmethod
    async def send(cls, port: int, audio: bytes, fmt: AudioFormat) -> Upload:
        upload = cls(await RawClient.connect(port), audio, fmt)
        await upload.client.send("transcribe", {"language": "en"})
        await upload.client.send("audio-start", upload.fmt)
        second = fmt.bytes_per_second
        for offset in range(0, len(audio), second):
            await upload.client.send("audio-chunk", upload.fmt, audio[offset : offset + second])
        await upload.client.send("audio-stop")
        return upload

    async def transcript(self) -> str:
        events = await self.client.receive_until("transcript", timeout=LONG)
        self.arrived = time.monotonic()
        self.text = str(events[-1].data.get("text", ""))
        await self.client.close()
        return self.text


async def _info_event(port: int, timeout: float) -> Event:
    client = await RawClient.connect(port)
    try:
        await client.send("describe")
        events = await client.receive_until("info", timeout=timeout)
        return events[-1]
    finally:
        await client.close()


async def test_a_long_request_does_not_hold_back_a_short_one(
    stt_service: ServiceProcess, stt_data_dir: Path, service_factory: list[ServiceProcess]
) -> None:
    """Almost two minutes of speech (four 30 s windows) are decoded window by window, each
    going back to the queue: a short command sent once that decode has begun is answered first
    (first come, first served, it would wait for all four windows)."""
    # No speculative decode in the pauses between sentences: the long one's only decode is its
    # final one, begun at audio-stop.
    stt = await _start(service_factory, stt_data_dir, "--no-partials", "--endpoint-silence", "1.5")
    long_audio, fmt = _long_speech(20)
    long = await Upload.send(stt.port, long_audio, fmt)
    long_done = asyncio.create_task(long.transcript())

    async def decoding() -> bool:
        return bool((await _info_event(stt.port, timeout=30.0)).data["load"]["running"])

    while not await decoding():  # the long audio is still being taken in: its decode not begun
        assert not long_done.done(), "the long transcript came before its decode was seen"
        await asyncio.sleep(0.05)
    pcm, short_fmt = piper_speech(SHORT)
    short = await Upload.send(stt.port, silence(0.2, short_fmt) + pcm + silence(0.7, short_fmt), short_fmt)
    assert wer(SHORT, await short.transcript()) <= 0.2, short.text
    await long_done
    assert short.arrived < long.arrived, "the short command waited for the whole long decode"
    assert len(long.text.split()) > 100, long.text  # the long one was decoded whole, too


async def test_partials_are_shed_under_load_and_every_final_arrives(
    stt_service: ServiceProcess, stt_data_dir: Path, service_factory: list[ServiceProcess]
) -> None:
    """Three clients stream at real-time pace, asking for a partial every 0.2 s, while a long
    transcript keeps the only worker busy: partials are shed (describe counts them), every final
    transcript arrives, right."""
    stt = await _start(service_factory, stt_data_dir, "--partial-interval", "0.2", "--partial-model", "same")
    long_audio, fmt = _long_speech(12)
    long = await Upload.send(stt.port, long_audio, fmt)
    long_done = asyncio.create_task(long.transcript())

    async def stream(sentence: str) -> float:
        pcm, fmt = piper_speech(sentence)
        audio = silence(0.2, fmt) + pcm + silence(0.7, fmt)
        result = await transcribe(stt.uri, audio, fmt, language="en", realtime=True, timeout=LONG)
        return wer(sentence, result.text)

    errors = await asyncio.wait_for(asyncio.gather(*(stream(s) for s in STREAMED)), LONG)
    assert max(errors) <= 0.25, errors
    assert await asyncio.wait_for(long_done, LONG)
    load: dict[str, Any] = (await _info_event(stt.port, timeout=30.0)).data["load"]
    assert load["shed"] > 0, load
    assert load["completed"] >= len(STREAMED) + 1, load


async def test_a_new_request_is_refused_while_the_queue_is_long(
    stt_service: ServiceProcess, stt_data_dir: Path, service_factory: list[ServiceProcess]
) -> None:
    """With --max-queue-wait, a request that would wait too long is answered at once with
    `overloaded` (and the connection closed); describe is answered all the while and says how
    busy the service is; the queued requests all get their transcripts; once the queue is gone,
    requests are taken again."""
    stt = await _start(service_factory, stt_data_dir, "--no-partials", "--max-queue-wait", "0.2")
    audio, fmt = _long_speech(4)
    uploads = [await Upload.send(stt.port, audio, fmt) for _ in range(4)]
    transcripts = [asyncio.create_task(u.transcript()) for u in uploads]
    small = {"rate": 16000, "width": 2, "channels": 1}

    refused: Event | None = None
    busy_load: dict[str, Any] = {}
    while refused is None and not all(t.done() for t in transcripts):
        probe = await RawClient.connect(stt.port)
        await probe.send("transcribe", {"language": "en"})
        await probe.send("audio-start", small)
        await probe.send("audio-stop")
        event = await probe.receive(timeout=LONG)
        assert event is not None
        if event.type == "error":
            refused = event
            assert await probe.closed(timeout=30.0)
            # describe while the queue is long: answered, with the load.
            busy_load = (await _info_event(stt.port, timeout=10.0)).data["load"]
        else:  # admitted: no audio, an empty transcript
            await probe.receive_until("transcript-stop", timeout=LONG)
        await probe.close()
    assert refused is not None, "no request was refused while four long decodes were queued"
    assert refused.data["code"] == OVERLOADED and "--max-queue-wait" in refused.data["text"], refused.data
    assert busy_load["queued"] + busy_load["running"] >= 1 and busy_load["expected_wait"] > 0.2, busy_load

    texts = await asyncio.wait_for(asyncio.gather(*transcripts), LONG)
    assert all(len(t.split()) > 20 for t in texts), texts  # nothing queued was lost

    async def admitted() -> bool:
        try:
            pcm, short_fmt = piper_speech(SHORT)
            result = await transcribe(stt.uri, pcm + silence(0.7, short_fmt), short_fmt, language="en")
        except ServiceError as err:  # refused while the last decodes finish
            assert err.code == OVERLOADED, err
            return False
        return wer(SHORT, result.text) <= 0.2

    deadline = time.monotonic() + LONG
    while not await admitted():
        assert time.monotonic() < deadline, "requests were still refused with the queue empty"
        await asyncio.sleep(0.5)
    info = await describe(stt.uri, timeout=10.0)
    assert info.asr
