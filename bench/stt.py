"""STT benchmark: our service beside wyoming-faster-whisper (the reference server, from PyPI) in one run.

Both transcribe the same audio with the same model: the bundled Whisper base directory our STT
assembles in its data dir, int8, beam 5 (our default), the same number of CPU threads, English.
The corpus is 20 spoken commands in two voices (the bundled piper voice and espeak-ng), each sent
at real-time pace as a satellite sends it: 0.3 s of silence, the command, 0.7 s of silence (a
satellite's VAD waits that long before it says audio-stop). Each clip goes to our service, then
to the peer, so both see the same (shared, changing) machine load.

Measured from the outside, as a client sees it:
- end of speech -> transcript: from the moment the chunk holding the last speech sample (the
  last sample louder than -40 dBFS) was sent to the moment the transcript event came; it
  includes the 0.7 s of silence the client sends before audio-stop;
- audio-stop -> transcript: what is left for the user to wait once the client has stopped;
- that wait per second of speech (how it grows with the length of a command);
- word error rate per voice and over both, unrounded (case, punctuation and spelling of numbers
  are not errors: tests/support/wer.py).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np

from bench.common import Figure, p90, parser, report
from bench.peers import WYOMING_FASTER_WHISPER, PeerProcess
from tests.support.services import ServiceProcess
from tests.support.speech import espeak_speech, piper_speech, silence
from tests.support.wer import wer
from wyoming_core.audio import AudioFormat
from wyoming_core.client import Transcription, transcribe_stream
from wyoming_core.models import default_data_dir
from wyoming_core.workers import default_workers
from wyoming_stt.models import resolve_model

COMMANDS = [
    "What time is it?",
    "Turn on the lights in the kitchen.",
    "Set a timer for ten minutes.",
    "What is the weather like tomorrow?",
    "Turn off the bedroom lights.",
    "Play some relaxing music in the living room.",
    "Lock the front door.",
    "Remind me to call my mother at six in the evening.",
    "Open the garage door.",
    "Close the blinds in the office.",
    "Is the back door locked?",
    "Dim the hallway lights to half.",
    "Start the vacuum cleaner.",
    "Add milk to the shopping list.",
    "How warm is it in the nursery?",
    "Turn the heating down a little.",
    "Stop the music.",
    "Switch on the fan in the bathroom.",
    "When does the sun set today?",
    "Cancel the timer.",
]
VOICES = ("piper", "espeak")
LEAD, TAIL = 0.3, 0.7
CHUNK_SECONDS = 0.05
# Speech is what is louder than this (-40 dBFS); voices end their audio with a little silence.
SPEECH_LEVEL = 328
PEER = "wyoming-faster-whisper"
# audio-stop -> transcript of ours at most this share of the reference server's (which
# transcribes only after audio-stop): the work must be done while the user is still silent.
STOP_RATIO_TARGET = 25.0


@dataclass(frozen=True)
class Clip:
    voice: str
    sentence: str
    audio: bytes  # lead silence + speech + tail silence
    fmt: AudioFormat
    speech_end: int  # byte offset just after the last speech sample
    speech_seconds: float


@dataclass
class Results:
    speech_end_to_final: list[float] = field(default_factory=list)
    stop_to_final: list[float] = field(default_factory=list)
    per_speech_second: list[float] = field(default_factory=list)
    errors: dict[str, list[float]] = field(default_factory=lambda: {voice: [] for voice in VOICES})
    misheard: list[str] = field(default_factory=list)  # "voice: said -> heard"


def make_clip(voice: str, sentence: str) -> Clip:
    pcm, fmt = piper_speech(sentence) if voice == "piper" else espeak_speech(sentence)
    samples = np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32))
    loud = np.flatnonzero(samples > SPEECH_LEVEL)
    first, last = (int(loud[0]), int(loud[-1])) if loud.size else (0, len(samples) - 1)
    lead = silence(LEAD, fmt)
    return Clip(
        voice,
        sentence,
        lead + pcm + silence(TAIL, fmt),
        fmt,
        len(lead) + (last + 1) * fmt.width,
        (last - first + 1) / fmt.rate,
    )


async def paced(clip: Clip, speech_end_sent: list[float]) -> AsyncIterator[bytes]:
    """The clip at real-time pace; notes when the chunk with the last speech sample was sent."""
    step = int(clip.fmt.rate * CHUNK_SECONDS) * clip.fmt.frame_bytes
    start = time.monotonic()
    for offset in range(0, len(clip.audio), step):
        delay = start + offset / clip.fmt.bytes_per_second - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if offset < clip.speech_end <= offset + step:
            speech_end_sent.append(time.monotonic())
        yield clip.audio[offset : offset + step]


async def run(uri: str, clip: Clip, results: Results) -> None:
    speech_end_sent: list[float] = []
    final: Transcription | None = None
    async for item in transcribe_stream(
        uri, paced(clip, speech_end_sent), clip.fmt, language="en", timeout=120
    ):
        if isinstance(item, Transcription):
            final = item
    if final is None or not speech_end_sent:
        raise RuntimeError(f"{uri} gave no transcript for {clip.sentence!r}")
    results.speech_end_to_final.append(final.final_at - speech_end_sent[0])
    results.stop_to_final.append(final.final_at - final.audio_stop_at)
    results.per_speech_second.append((final.final_at - final.audio_stop_at) / clip.speech_seconds)
    error = wer(clip.sentence, final.text)
    results.errors[clip.voice].append(error)
    if error:
        results.misheard.append(f"{clip.voice}: {clip.sentence!r} -> {final.text!r}")


def figures_of(who: str, results: Results, peer: Results | None) -> list[Figure]:
    med = statistics.median
    every = [e for errors in results.errors.values() for e in errors]
    peer_every = [e for errors in peer.errors.values() for e in errors] if peer else []
    figures = [
        Figure(f"end of speech -> transcript, {who} (median)", med(results.speech_end_to_final) * 1000, "ms"),
        Figure(f"end of speech -> transcript, {who} (p90)", p90(results.speech_end_to_final) * 1000, "ms"),
        Figure(f"audio-stop -> transcript, {who} (median)", med(results.stop_to_final) * 1000, "ms"),
        Figure(f"audio-stop -> transcript, {who} (p90)", p90(results.stop_to_final) * 1000, "ms"),
        Figure(
            f"audio-stop -> transcript per second of speech, {who} (median)",
            med(results.per_speech_second),
            "s/s",
        ),
    ]
    if peer is not None:
        figures.append(
            Figure(
                f"audio-stop -> transcript, {who} / {PEER} (median)",
                med(results.stop_to_final) / med(peer.stop_to_final) * 100,
                "%",
                STOP_RATIO_TARGET,
            )
        )
    for voice, errors in results.errors.items():
        figures.append(Figure(f"word error rate, {voice} voice, {who}", statistics.mean(errors) * 100, "%"))
    figures.append(
        Figure(
            f"word error rate, both voices, {who}",
            statistics.mean(every) * 100,
            "%",
            # Ours no worse than the reference server on the same audio (issue 11, item 4).
            statistics.mean(peer_every) * 100 if peer else None,
        )
    )
    return figures


async def main() -> None:
    cli = parser(__doc__ or "")
    cli.add_argument("--commands", type=int, default=len(COMMANDS), help="Use only the first N commands")
    args = cli.parse_args()
    load_before = os.getloadavg()[0]
    clips = [make_clip(voice, sentence) for sentence in COMMANDS[: args.commands] for voice in VOICES]
    data_dir = default_data_dir("stt")
    model_dir = resolve_model("base", (data_dir,), local_files_only=True).prepare()
    threads = str(default_workers())
    ours = ServiceProcess("wyoming_stt", "--model", "base", "--data-dir", str(data_dir), "--language", "en")
    peer = PeerProcess(
        WYOMING_FASTER_WHISPER,
        *(
            "--model",
            model_dir,
            "--data-dir",
            tempfile.mkdtemp(prefix="stt-bench-peer-"),
            "--local-files-only",
        ),
        *("--language", "en", "--compute-type", "int8", "--beam-size", "5", "--cpu-threads", threads),
    )
    services = {"ours": ours, PEER: peer}
    results = {who: Results() for who in services}
    try:
        for service in services.values():
            service.start()
        for service in services.values():
            service.wait_listening(timeout=120)
        await ours.wait_ready(timeout=300)
        for service in services.values():
            await run(service.uri, clips[0], Results())  # warm-up: the peer loads its model now
        for clip in clips:
            for who, service in services.items():
                await run(service.uri, clip, results[who])
    finally:
        for service in services.values():
            service.stop()

    for who, result in results.items():  # what the word error rates are made of
        print(f"Misheard by {who}: {len(result.misheard)} of {len(clips)}")
        for line in result.misheard:
            print(f"  {line}")
    figures = figures_of("ours", results["ours"], results[PEER]) + figures_of(PEER, results[PEER], None)
    figures += [
        Figure("commands x voices", len(clips), ""),
        Figure("machine load average at the start (1 min, shared machine)", load_before, ""),
        Figure("machine load average at the end (1 min, shared machine)", os.getloadavg()[0], ""),
    ]
    title = f"STT (whisper base, int8, beam 5, {threads} threads; beside {WYOMING_FASTER_WHISPER.spec})"
    report(figures, title, args.json)


if __name__ == "__main__":
    asyncio.run(main())
