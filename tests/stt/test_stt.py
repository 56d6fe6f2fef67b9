"""The STT service: real model, real TCP, the wyoming/our client, speech made at test time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop

from tests.support.raw import RawClient
from tests.support.services import ServiceProcess
from tests.support.speech import espeak_speech, noise, piper_speech, silence
from tests.support.wer import wer
from wyoming_core.audio import AudioFormat, to_stt_format
from wyoming_core.client import (
    Connection,
    Partial,
    ServiceError,
    Transcription,
    describe,
    transcribe,
    transcribe_stream,
)

SENTENCES = [
    "What time is it?",
    "Turn on the lights in the kitchen.",
    "Set a timer for ten minutes.",
    "What is the weather like tomorrow?",
]
LONG_SENTENCE = (
    "Please turn off all the lights in the living room and lock the front door before we go to bed."
)
TAIL = 0.7  # what a client's own VAD waits before audio-stop


def _with_tail(pcm: bytes, fmt: AudioFormat) -> bytes:
    return silence(0.2, fmt) + pcm + silence(TAIL, fmt)


async def test_describe_answers_while_the_model_loads(tmp_path: Path) -> None:
    # A fresh data dir: the bundled model has to be assembled and loaded first (many seconds).
    service = ServiceProcess("wyoming_stt", "--data-dir", str(tmp_path), "--model", "base").start()
    try:
        service.wait_listening()
        # A generous deadline (the machine may be busy); what matters is that the answer came
        # before the model was ready, not after it.
        info = await describe(service.uri, timeout=10.0)
        assert "is ready" not in service.log(), "describe waited for the model (or it loaded at once)"
        program = info.asr[0]
        assert program.installed and program.attribution.name and program.version
        assert program.supports_transcript_streaming
        model = program.models[0]
        assert model.name == "base" and model.installed and model.attribution.url
        assert "en" in model.languages and "de" in model.languages
    finally:
        service.stop()


@pytest.mark.parametrize("voice", ["piper", "espeak"])
async def test_speech_is_transcribed(stt_service: ServiceProcess, voice: str) -> None:
    make = piper_speech if voice == "piper" else espeak_speech
    errors = []
    for sentence in SENTENCES:
        pcm, fmt = make(sentence)
        result = await transcribe(stt_service.uri, _with_tail(pcm, fmt), fmt, language="en")
        errors.append(wer(sentence, result.text))
    assert sum(errors) / len(errors) <= 0.15, errors


async def test_any_input_format_is_converted(stt_service: ServiceProcess) -> None:
    pcm, fmt = piper_speech("Turn on the lights in the kitchen.")
    # 22.05 kHz mono 16-bit -> 48 kHz stereo 32-bit, as some microphones send it.
    import numpy as np

    mono16 = np.frombuffer(to_stt_format(pcm, fmt), dtype="<i2").astype(np.int32)
    up = np.repeat(mono16, 3)  # 16 kHz -> 48 kHz
    stereo32 = np.repeat((up << 16)[:, None], 2, axis=1).astype("<i4").tobytes()
    fmt48 = AudioFormat(48000, 4, 2)
    result = await transcribe(stt_service.uri, _with_tail(stereo32, fmt48), fmt48, language="en")
    assert wer("Turn on the lights in the kitchen.", result.text) <= 0.2, result.text


async def test_partials_arrive_before_audio_stop_in_real_time(stt_service: ServiceProcess) -> None:
    pcm, fmt = piper_speech(LONG_SENTENCE)
    audio = _with_tail(pcm, fmt)
    stop_sent = 0.0
    partial_times: list[float] = []

    async def paced() -> object:
        nonlocal stop_sent
        step = int(fmt.rate * 0.1) * fmt.frame_bytes
        for start in range(0, len(audio), step):
            yield audio[start : start + step]
            await asyncio.sleep(0.1)
        stop_sent = time.monotonic()

    final: Transcription | None = None
    async for item in transcribe_stream(stt_service.uri, paced(), fmt, language="en"):  # type: ignore[arg-type]
        if isinstance(item, Partial):
            partial_times.append(time.monotonic())
        else:
            final = item
    assert final is not None and wer(LONG_SENTENCE, final.text) <= 0.2, final
    assert partial_times and partial_times[0] < stop_sent, "no partial before audio-stop"
    # The streamed chunks add up to the final text.
    assert "".join(final.partials).strip() == final.text


async def _transcribe_raw(uri: str, audio: bytes, fmt: AudioFormat, realtime: bool) -> dict[str, object]:
    async with Connection(uri) as conn:
        await conn.send(Transcribe(language="en"))
        await conn.send(AudioStart(rate=fmt.rate, width=fmt.width, channels=fmt.channels))
        step = int(fmt.rate * 0.05) * fmt.frame_bytes
        for start in range(0, len(audio), step):
            await conn.send(AudioChunk(fmt.rate, fmt.width, fmt.channels, audio[start : start + step]))
            if realtime:
                await asyncio.sleep(0.05)
        await conn.send(AudioStop())
        while True:
            event = await conn.receive()
            if event.type == "transcript":
                return event.data


async def test_final_decode_starts_before_audio_stop(stt_service: ServiceProcess) -> None:
    """The mechanism behind the speed: end of speech is detected in the 0.7 s tail."""
    pcm, fmt = piper_speech("What is the weather like tomorrow?")
    data = await _transcribe_raw(stt_service.uri, _with_tail(pcm, fmt), fmt, realtime=True)
    assert wer("What is the weather like tomorrow?", str(data["text"])) <= 0.2
    endpointing = data["endpointing"]
    assert isinstance(endpointing, dict)
    assert endpointing["early_decode"] is True
    # The decode started within the tail, before audio-stop (how much earlier depends on the
    # machine's load; the figure is measured in bench/stt.py).
    assert endpointing["lead_ms"] > 0


async def test_early_transcript_comes_before_audio_stop(
    service_factory: list[ServiceProcess], stt_data_dir: Path
) -> None:
    service = ServiceProcess(
        "wyoming_stt",
        "--data-dir",
        str(stt_data_dir),
        "--language",
        "en",
        "--early-transcript",
        "--endpoint-silence",
        "0.3",
    ).start()
    service_factory.append(service)
    service.wait_listening()
    await service.wait_ready()
    pcm, fmt = piper_speech("Set a timer for ten minutes.")
    # A long tail (3 s): the transcript must come during it, without audio-stop.
    audio = silence(0.2, fmt) + pcm + silence(3.0, fmt)
    async with Connection(service.uri) as conn:
        await conn.send(Transcribe(language="en"))
        await conn.send(AudioStart(rate=fmt.rate, width=fmt.width, channels=fmt.channels))
        step = int(fmt.rate * 0.05) * fmt.frame_bytes
        got: dict[str, object] | None = None

        async def reader() -> None:
            nonlocal got
            while True:
                event = await conn.receive()
                if event.type == "transcript":
                    got = event.data
                    return

        read_task = asyncio.create_task(reader())
        for start in range(0, len(audio), step):
            await conn.send(AudioChunk(fmt.rate, fmt.width, fmt.channels, audio[start : start + step]))
            await asyncio.sleep(0.05)
            if got is not None:
                break
        assert got is not None, "no transcript before audio-stop"
        await conn.send(AudioStop())
        await read_task
    assert wer("Set a timer for ten minutes.", str(got["text"])) <= 0.2


@pytest.mark.parametrize("kind", ["silence", "noise"])
async def test_silence_and_noise_give_no_text(stt_service: ServiceProcess, kind: str) -> None:
    fmt = AudioFormat(16000, 2, 1)
    audio = silence(3.0, fmt) if kind == "silence" else noise(3.0, fmt, level=0.05)
    result = await transcribe(stt_service.uri, audio, fmt, language="en")
    assert result.text == ""


async def test_audio_stop_without_audio_gives_empty_transcript(stt_service: ServiceProcess) -> None:
    client = await RawClient.connect(stt_service.port)
    await client.send("transcribe", {"language": "en"})
    await client.send("audio-stop")
    events = await client.receive_until("transcript")
    assert events[-1].data["text"] == ""
    await client.close()


async def test_audio_chunk_before_audio_start_is_an_error(stt_service: ServiceProcess) -> None:
    client = await RawClient.connect(stt_service.port)
    await client.send("audio-chunk", {"rate": 16000, "width": 2, "channels": 1}, b"\0" * 320)
    event = await client.receive()
    assert event is not None and event.type == "error" and event.data["code"] == "out-of-order"
    assert "audio-start" in event.data["text"]
    assert await client.closed()


async def test_unsupported_sample_width_is_an_error(stt_service: ServiceProcess) -> None:
    client = await RawClient.connect(stt_service.port)
    await client.send("audio-start", {"rate": 16000, "width": 5, "channels": 1})
    event = await client.receive()
    assert event is not None and event.data["code"] == "unsupported-audio-format"
    assert "width" in event.data["text"]
    assert await client.closed()


async def test_unsupported_language_is_named_in_an_error(stt_service: ServiceProcess) -> None:
    fmt = AudioFormat(16000, 2, 1)
    with pytest.raises(ServiceError) as caught:
        await transcribe(stt_service.uri, silence(0.5, fmt), fmt, language="xx-YY")
    assert caught.value.code == "unsupported-language"
    assert "xx-YY" in caught.value.text


async def test_client_vanishing_mid_stream_leaves_service_healthy(stt_service: ServiceProcess) -> None:
    pcm, fmt = piper_speech(LONG_SENTENCE)
    for _ in range(3):
        client = await RawClient.connect(stt_service.port)
        await client.send("transcribe", {"language": "en"})
        await client.send("audio-start", {"rate": fmt.rate, "width": 2, "channels": 1})
        await client.send("audio-chunk", {"rate": fmt.rate, "width": 2, "channels": 1}, pcm[: len(pcm) // 2])
        await client.close()
    # Served as usual right after: describe, and a whole request.
    info = await describe(stt_service.uri, timeout=10.0)
    assert info.asr
    pcm, fmt = piper_speech("What is the weather like tomorrow?")
    result = await transcribe(stt_service.uri, _with_tail(pcm, fmt), fmt, language="en", timeout=120)
    assert wer("What is the weather like tomorrow?", result.text) <= 0.2, result.text
    assert stt_service.alive()
    assert "Traceback" not in stt_service.log()


async def test_ten_concurrent_clients(stt_service: ServiceProcess) -> None:
    clips = [piper_speech(SENTENCES[i % len(SENTENCES)]) for i in range(10)]

    async def one(i: int) -> float:
        pcm, fmt = clips[i]
        result = await transcribe(stt_service.uri, _with_tail(pcm, fmt), fmt, language="en", timeout=180)
        return wer(SENTENCES[i % len(SENTENCES)], result.text)

    errors = await asyncio.gather(*(one(i) for i in range(10)))
    assert sum(errors) / len(errors) <= 0.15, errors
    # describe was never blocked by the work
    info = await describe(stt_service.uri, timeout=1.0)
    assert info.asr
