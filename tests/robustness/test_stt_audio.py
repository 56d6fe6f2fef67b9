"""STT audio checked before it is converted, converted off the event loop (issue 13, item 6).

The issue: a 4 MiB chunk at 1000 Hz / 8 bit became 128 MiB before the length check, and the
silero VAD ran on the event loop (4.98 s for 119 s of audio under load).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.robustness.checks import PROMPT, RSS_MARGIN_MB, expect_error, vanish
from tests.robustness.peers import settled
from tests.robustness.targets import stt_process, stt_work
from tests.support.raw import RawClient
from tests.support.services import ServiceProcess
from tests.support.speech import piper_speech, silence
from wyoming_core.audio import AudioFormat
from wyoming_core.client import describe
from wyoming_core.workers import PriorityPool, WorkerPool
from wyoming_stt.endpoint import AudioWorkers, DetectorPool
from wyoming_stt.engine import Engines, WhisperEngine
from wyoming_stt.handler import CHUNK_TOO_LONG, TOO_LONG
from wyoming_stt.models import resolve_model
from wyoming_stt.session import TranscriptionSession
from wyoming_stt.settings import build_parser, settings_from_args

MIB = 1024 * 1024
LOW = {"rate": 1000, "width": 1, "channels": 1}


def peak_rss_mb(service: ServiceProcess) -> float:
    assert service.proc is not None
    for line in Path(f"/proc/{service.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def reset_peak_rss(service: ServiceProcess) -> None:
    assert service.proc is not None
    Path(f"/proc/{service.proc.pid}/clear_refs").write_text("5")  # peak RSS := current RSS


@pytest.fixture(scope="module")
async def stt(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServiceProcess]:
    # Idle connections may wait a minute here: one case waits for the service to go quiet.
    service = stt_process(tmp_path_factory.mktemp("stt-audio"), "--idle-timeout", "60").start()
    try:
        service.wait_listening(timeout=120)
        await service.wait_ready()
        yield service
    finally:
        service.stop()


async def test_a_four_mib_chunk_at_1000_hz_is_refused_before_it_is_converted(stt: ServiceProcess) -> None:
    await stt_work(stt.uri)  # warm: first-use allocations are not growth
    before = await settled(stt.rss_mb)
    reset_peak_rss(stt)

    async def abuse() -> None:
        client = await RawClient.connect(stt.port)
        await client.send("audio-start", LOW)
        await client.send("audio-chunk", LOW, b"\x80" * (4 * MIB))  # 70 minutes of 8-bit audio
        await expect_error(client, {CHUNK_TOO_LONG}, timeout=PROMPT * 6)
        assert await client.closed(timeout=PROMPT)

    await asyncio.gather(*(abuse() for _ in range(3)))  # 12 MiB: inside the byte budget
    peak = peak_rss_mb(stt)
    assert peak <= before + RSS_MARGIN_MB, f"RSS peaked at {peak:.0f} MB (from {before:.0f} MB)"
    await stt_work(stt.uri)


async def test_audio_over_two_minutes_is_refused_before_it_is_converted(stt: ServiceProcess) -> None:
    reset_peak_rss(stt)
    before = stt.rss_mb()
    client = await RawClient.connect(stt.port)
    await client.send("audio-start", LOW)
    for _ in range(4):  # 4 x 29 s: under the limit
        await client.send("audio-chunk", LOW, b"\x80" * 29_000)
    await client.send("audio-chunk", LOW, b"\x80" * 5_000)  # 121 s in all
    await expect_error(client, {TOO_LONG}, timeout=PROMPT * 6)
    assert await client.closed(timeout=PROMPT)
    assert peak_rss_mb(stt) <= before + RSS_MARGIN_MB
    await describe(stt.uri, timeout=PROMPT)


async def test_resampling_and_the_vad_leave_the_event_loop_free(tmp_path: Path) -> None:
    """In-process, with the real converter and the real silero VAD: while a session takes in
    30 s chunks at 48 kHz, the event loop keeps running other work."""
    settings = settings_from_args(build_parser().parse(["--model", "tiny.en", "--data-dir", str(tmp_path)]))
    resolved = resolve_model("tiny.en", settings.data_dirs, local_files_only=True)
    decode_pool = PriorityPool(1, "test-decode")
    audio_pool = WorkerPool(2, "test-audio")
    engines = Engines(WhisperEngine(settings, resolved, decode_pool))  # never loaded: no speech
    sent: list[object] = []

    async def send(event: object) -> None:
        sent.append(event)

    session = TranscriptionSession(engines, AudioWorkers(audio_pool, DetectorPool()), settings, "en", send)
    fmt = AudioFormat(48000, 2, 1)
    rng = random.Random(5)
    noise = bytes(rng.getrandbits(8) & 0x0F for _ in range(fmt.bytes_per_second * 30))
    ticks = 0
    running = True

    async def ticker() -> None:
        nonlocal ticks
        while running:
            await asyncio.sleep(0.005)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    try:
        counts = []
        for _ in range(3):
            start = ticks
            await session.add_audio(noise, fmt)
            counts.append(ticks - start)
        # Each chunk is seconds of work (conversion + 940 VAD frames); on the loop it would
        # leave no room for a single tick.
        assert min(counts) >= 1, counts
        assert sum(counts) >= 10, counts
    finally:
        running = False
        await tick_task
        session.cancel()
        decode_pool.shutdown()
        audio_pool.shutdown()


def _cpu_seconds(service: ServiceProcess) -> float:
    assert service.proc is not None
    fields = Path(f"/proc/{service.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _cpu_until_quiet(service: ServiceProcess, timeout: float = 180.0) -> float:
    """CPU seconds the service uses from now until it is quiet (under 5 % of a core for 1 s)."""
    start = last = _cpu_seconds(service)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        now = _cpu_seconds(service)
        if now - last < 0.05:
            return now - start
        last = now
    raise AssertionError(f"the service was still busy after {timeout:g} s")


def _long_speech() -> tuple[bytes, dict[str, int]]:
    """About 110 s of varied speech (four 30 s windows for the final decode), ending mid-speech
    so that no speculative decode has started before audio-stop."""
    sentences = [
        "Please remind me to water the plants in the garden tomorrow morning before it gets hot.",
        "Then tell me the weather for the weekend and whether I need an umbrella on Saturday.",
        "After that read me the shopping list, one item after the other, slowly and in detail.",
        "Switch off the lights in the kitchen and the hallway when everybody has gone to bed.",
        "Set a timer for twenty minutes and tell me when the bread in the oven is ready.",
    ]
    parts = []
    for n in range(24):
        pcm, fmt = piper_speech(sentences[n % len(sentences)], length_scale=0.9 + 0.05 * (n % 4))
        parts.append(pcm + silence(0.4, fmt))
    audio = b"".join(parts)[: -len(silence(0.4, fmt))]
    return audio, {"rate": fmt.rate, "width": fmt.width, "channels": fmt.channels}


async def _upload(client: RawClient, audio: bytes, fmt: dict[str, int]) -> None:
    """All the audio, processed (the describe after it is answered), and the service quiet."""
    await client.send("transcribe", {"language": "en"})
    await client.send("audio-start", fmt)
    second = fmt["rate"] * fmt["width"] * fmt["channels"]
    for offset in range(0, len(audio), second):
        await client.send("audio-chunk", fmt, audio[offset : offset + second])
    await client.send("describe")
    await client.receive_until("info", timeout=180)


async def test_a_client_that_leaves_during_the_final_decode_stops_it(stt: ServiceProcess) -> None:
    """The read loop keeps reading while the transcript is decoded, so the service notices the
    client has gone and stops decoding after the 30 s window under way (the issue: work went on
    for clients long gone)."""
    audio, fmt = _long_speech()
    # What the final decode costs when the client stays for its transcript.
    client = await RawClient.connect(stt.port)
    await _upload(client, audio, fmt)
    await _cpu_until_quiet(stt)
    start = _cpu_seconds(stt)
    await client.send("audio-stop")
    await client.receive_until("transcript", timeout=180)
    await client.close()
    decode = _cpu_seconds(stt) - start + await _cpu_until_quiet(stt)
    # The same request; the client vanishes once the final decode is under way.
    client = await RawClient.connect(stt.port)
    await _upload(client, audio, fmt)
    await _cpu_until_quiet(stt)
    start = _cpu_seconds(stt)
    await client.send("audio-stop")
    await asyncio.sleep(0.3)
    await vanish(client)
    after = _cpu_seconds(stt) - start + await _cpu_until_quiet(stt)
    assert after < decode * 0.7, f"{after:.1f} CPU seconds after leaving; the decode takes {decode:.1f}"
    await stt_work(stt.uri)
