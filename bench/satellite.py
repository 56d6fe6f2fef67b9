"""Satellite benchmark: the whole standalone turn, barge-in, wake word CPU and memory.

Runs the satellite as a process on mic/speaker WAV files against the real STT and TTS
services and the conversation service on a fake Ollama (in this process) that streams at a
fixed token rate. All times are on the one system monotonic clock the processes share:

- end of speech -> first reply audio, *not counting the model's own time to its first
  sentence* (the fake Ollama's request received -> sentence-ending token sent). "End of
  speech" is the satellite's VAD decision; the same figure from the end of the user's words
  in the mic WAV (which adds the VAD's end silence) is listed too;
- barge-in: wake word detection -> playback silent (what was already handed out included),
  from the satellite's own log;
- wake word CPU per second of audio (microWakeWord, fed faster than real time in-process),
  and the whole satellite process's CPU while it waits for the wake word;
- the satellite process's peak resident memory.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import Figure, parser, report
from satellite.settings import WakeSettings
from satellite.wake import LocalWake
from tests.satellite.helpers import (
    WAKE_REQUEST,
    SatelliteRun,
    barge_in_ms,
    mic_wav,
    silence,
    speech,
)
from tests.support.fake_ollama import FakeOllama
from tests.support.services import ServiceProcess

REPLY = (
    "It is twenty one degrees inside and sunny outside. The rain comes back tomorrow. That is all for now."
)
MIC_RATE = 16000


def _speech_end(audio: bytes) -> float:
    """Seconds from the start of `audio` to the end of its last sound (level above -40 dBFS)."""
    samples = np.abs(np.frombuffer(audio, dtype="<i2").astype(np.int32))
    loud = np.nonzero(samples > 328)[0]
    return float(loud[-1]) / MIC_RATE if len(loud) else 0.0


def _rss_sampler(sat: SatelliteRun, peak: list[float]) -> asyncio.Task[None]:
    async def sample() -> None:
        while True:
            try:
                peak.append(sat.rss_mb())
            except (OSError, AssertionError):
                pass
            await asyncio.sleep(0.5)

    return asyncio.create_task(sample())


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def turns(
    tmp: Path,
    turns_n: int,
    tokens_per_second: float,
    first_token_delay: float,
    stt_model: str,
    stt_args: list[str],
) -> dict[str, float]:
    gap = 20.0  # room for a slow reply on a busy machine: the next wake must not barge in
    parts: list[str | float] = [2.0]
    request_ends: list[float] = []
    offset = 2.0
    for _ in range(turns_n):
        request = speech(WAKE_REQUEST)
        request_ends.append(offset + _speech_end(request))
        parts += [WAKE_REQUEST, gap]
        offset += len(request) / (2 * MIC_RATE) + gap
    mic = mic_wav(tmp / "turns.wav", *parts)

    stt = ServiceProcess(
        "wyoming_stt", "--model", stt_model, "--data-dir", str(tmp / "stt"), "--language", "en", *stt_args
    )
    tts = ServiceProcess("wyoming_tts", "--data-dir", str(tmp / "tts"))
    async with FakeOllama(
        reply=REPLY, tokens_per_second=tokens_per_second, first_token_delay=first_token_delay
    ) as fake:
        llm = ServiceProcess("wyoming_llm", "--ollama-url", fake.url, "--data-dir", str(tmp / "llm"))
        services = [stt.start(), tts.start(), llm.start()]
        try:
            for service in services:
                service.wait_listening(60)
            await stt.wait_ready()
            await tts.wait_ready(marker="is ready")
            await llm.wait_ready(marker="is loaded and warm")
            sat = await SatelliteRun(
                "--mic-file", str(mic), "--snd-file", str(tmp / "turns-out.wav"),
                "--wake-word", "hey_jarvis", "--stt-uri", stt.uri, "--tts-uri", tts.uri,
                "--handle-uri", llm.uri, "--follow-up", "0", "--exit-after-turns", str(turns_n),
            ).start()  # fmt: skip
            peak: list[float] = []
            sampler = _rss_sampler(sat, peak)
            try:
                code = await sat.wait_exit(60 + turns_n * 40)
            finally:
                sampler.cancel()
            log = sat.log()
            if code != 0:
                raise RuntimeError(f"satellite exited {code}:\n{log}")
        finally:
            for service in services:
                service.stop()
        chats = [c for c in fake.chats if c.completed]

    started = float(re.search(r"mic-file .* started at monotonic ([0-9.]+)", log).group(1))  # type: ignore[union-attr]
    timings = [
        {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", line)}
        for line in re.findall(r"turn-timing .*", log)
    ]
    if len(timings) != turns_n or len(chats) < turns_n:
        raise RuntimeError(
            f"expected {turns_n} turns, got {len(timings)} timings, {len(chats)} chats:\n{log}"
        )
    excl, excl_words, raw, model = [], [], [], []
    for timing, chat, request_end in zip(timings, chats[-turns_n:], request_ends, strict=True):
        sentence_at = chat.first_sentence_at()
        assert sentence_at is not None
        own = sentence_at - chat.received_at
        model.append(own)
        raw.append(timing["first_audio_at"] - timing["eos_at"])
        excl.append(raw[-1] - own)
        excl_words.append(timing["first_audio_at"] - (started + request_end) - own)
    return {
        "excl": statistics.median(excl),
        "excl_max": max(excl),
        "excl_words": statistics.median(excl_words),
        "raw": statistics.median(raw),
        "model": statistics.median(model),
        "stt": statistics.median(t["eos_to_transcript"] for t in timings),
        "tts": statistics.median(t["tts_first_chunk"] for t in timings),
        "sound": statistics.median(t["chunk_to_sound"] for t in timings),
        "rss": max(peak) if peak else 0.0,
    }


async def barge_ins(tmp: Path, count: int) -> list[float]:
    long_reply = " ".join(f"This is sentence number {n} of a rather long answer." for n in range(1, 12))
    handle = ServiceProcess(
        "tests.satellite.fake_services", "handle", "--reply", long_reply, "--delay", "0.3"
    )
    tts = ServiceProcess("tests.satellite.fake_services", "tts")
    stt = ServiceProcess("wyoming_stt", "--model", "base", "--data-dir", str(tmp / "stt"), "--language", "en")
    parts: list[str | float] = [1.0, WAKE_REQUEST]
    for _ in range(count):
        parts += [7.0, WAKE_REQUEST]
    mic = mic_wav(tmp / "barge.wav", *parts, 1.0)
    services = [handle.start(), tts.start(), stt.start()]
    try:
        for service in services:
            service.wait_listening(60)
        await stt.wait_ready()
        sat = await SatelliteRun(
            "--mic-file", str(mic), "--snd-file", str(tmp / "barge-out.wav"), "--wake-word", "hey_jarvis",
            "--stt-uri", stt.uri, "--tts-uri", tts.uri, "--handle-uri", handle.uri, "--follow-up", "0",
        ).start()  # fmt: skip
        log = await sat.wait_for("Barge-in by", count=count, timeout=60 + 15 * count)
        await sat.stop()
        return barge_in_ms(log)
    finally:
        for service in services:
            service.stop()


def wake_cpu(seconds: float, names: tuple[str, ...]) -> float:
    """CPU per second of audio, in % of one core."""
    wake = LocalWake(WakeSettings(names=names))
    sentence = speech("The meeting has been moved to Thursday at three, so please update your calendars.")
    audio = b""
    while len(audio) < seconds * 2 * MIC_RATE:
        audio += sentence + silence(1.0)
    start = time.process_time()
    for offset in range(0, len(audio), 640):  # the satellite's 20 ms chunks
        wake.process(audio[offset : offset + 640])
    return 100 * (time.process_time() - start) / (len(audio) / (2 * MIC_RATE))


async def idle_cpu(tmp: Path) -> float:
    """The whole satellite process's CPU (% of a core) while it waits for the wake word."""
    mic = mic_wav(tmp / "quiet.wav", 30.0)
    sat = await SatelliteRun("--mic-file", str(mic), "--snd-file", str(tmp / "quiet-out.wav")).start()
    try:
        await sat.wait_for("is ready", timeout=60)
        await asyncio.sleep(2.0)
        assert sat.proc is not None
        before, started = _cpu_seconds(sat.proc.pid), time.monotonic()
        await asyncio.sleep(15.0)
        return 100 * (_cpu_seconds(sat.proc.pid) - before) / (time.monotonic() - started)
    finally:
        await sat.stop()


async def main() -> None:
    cli = parser(__doc__ or "")
    cli.add_argument("--turns", type=int, default=3, help="Standalone turns to time")
    cli.add_argument("--barge-ins", type=int, default=3, help="Barge-ins to time")
    cli.add_argument(
        "--stt-model", default="base", help="Whisper model of the STT service (base: the stack's)"
    )
    cli.add_argument("--stt-args", default="", help="More STT flags, e.g. '--no-partials'")
    cli.add_argument("--tokens-per-second", type=float, default=20.0, help="The fake model's speed")
    cli.add_argument("--first-token-delay", type=float, default=0.3, help="The fake model's prompt time")
    args = cli.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-satellite-") as tmp_dir:
        tmp = Path(tmp_dir)
        cpu_one = wake_cpu(120.0, ("okay_nabu",))
        cpu_four = wake_cpu(60.0, ("okay_nabu", "hey_jarvis", "alexa", "hey_mycroft"))
        cpu_oww = wake_cpu(30.0, ("oww:hey_jarvis",))
        idle = await idle_cpu(tmp)
        turn = await turns(
            tmp,
            args.turns,
            args.tokens_per_second,
            args.first_token_delay,
            args.stt_model,
            shlex.split(args.stt_args),
        )
        barge = await barge_ins(tmp, args.barge_ins)

    model = (
        f"fake Ollama at {args.tokens_per_second:g} tokens/s, first token after {args.first_token_delay:g} s"
    )
    figures = [
        Figure(
            "end of speech -> first reply audio, excl. model's first sentence (median)",
            turn["excl"] * 1000, "ms", 800,
            note=f"VAD end of speech; {args.turns} turns; STT {args.stt_model} {args.stt_args}; {model}",
        ),
        Figure("same, worst turn", turn["excl_max"] * 1000, "ms"),
        Figure("same, from the end of the words (adds VAD end silence)", turn["excl_words"] * 1000, "ms"),
        Figure("VAD end of speech -> transcript (median)", turn["stt"] * 1000, "ms"),
        Figure("TTS: first sentence sent -> first audio chunk (median)", turn["tts"] * 1000, "ms"),
        Figure("satellite: first audio chunk -> it sounds (median)", turn["sound"] * 1000, "ms"),
        Figure("model's own time to its first sentence (median)", turn["model"] * 1000, "ms"),
        Figure("VAD end of speech -> first audio incl. model (median)", turn["raw"] * 1000, "ms"),
        Figure("barge-in: detection -> playback silent (max)", max(barge), "ms", 200,
               note=f"{len(barge)} barge-ins"),
        Figure("barge-in: detection -> playback silent (median)", statistics.median(barge), "ms"),
        Figure("wake word CPU, 1 microWakeWord model", cpu_one, "% of a core", 2),
        Figure("wake word CPU, 4 microWakeWord models", cpu_four, "% of a core"),
        Figure("wake word CPU, 1 openWakeWord model", cpu_oww, "% of a core"),
        Figure("satellite process CPU while waiting for the wake word", idle, "% of a core"),
        Figure("satellite resident memory (peak during turns)", turn["rss"], "MB", 100),
    ]  # fmt: skip
    report(figures, "Satellite (standalone, 2-core machine)", args.json)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
