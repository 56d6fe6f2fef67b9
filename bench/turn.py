"""End of turn: what the turn detector costs, and what the STT's decision does with pauses.

- Smart Turn v3.2 per evaluation, on one thread: features (numpy log-mel of 8 s) and model,
  CPU time of the evaluating thread (what it takes of one core, however busy the machine is)
  and wall time;
- the hesitation corpus (tests/support/hesitation.py: 10 commands x piper and espeak-ng with
  a 0.4-0.8 s pause inside): turns that end inside the pause, with the service's own decision
  on the real Whisper and Smart Turn models, every answer there the moment it is asked for
  (tests/support/turn_sim.py: the hardest case for a pause), for vad_sensitivity "default"
  and "relaxed";
- the same commands said without a pause: how many end on the detector's word (after 0.2 s of
  silence) rather than after the longest pause, and the silence it took;
- the real STT service, commands streamed in real time with vad_sensitivity: the last speech
  sample -> the transcript (before audio-stop), which includes the final decode.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import Figure, parser, report
from tests.support.hesitation import corpus, fluent
from tests.support.services import ServiceProcess
from tests.support.turn_sim import decide
from wyoming_core.audio import AudioFormat
from wyoming_core.client import Transcription, transcribe_stream
from wyoming_core.turn_detector import TurnDetector, last_window, log_mel
from wyoming_core.workers import PriorityPool
from wyoming_stt.engine import WhisperEngine
from wyoming_stt.models import resolve_model
from wyoming_stt.settings import build_parser, settings_from_args
from wyoming_stt.turn import TurnLimits

FMT = AudioFormat(16000, 2, 1)
LEAD = 0.5


def _silence(seconds: float) -> bytes:
    return b"\0" * (int(16000 * seconds) * 2)


def detector_cost(detector: TurnDetector, runs: int) -> dict[str, float]:
    pcm = fluent("piper")[0][1] + _silence(0.2)
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    detector.complete_probability(pcm)  # warm
    features_cpu, total_cpu, total_wall = [], [], []
    for _ in range(runs):
        start = time.thread_time()
        log_mel(last_window(samples))
        features_cpu.append(time.thread_time() - start)
        start, wall = time.thread_time(), time.perf_counter()
        detector.complete_probability(pcm)
        total_cpu.append(time.thread_time() - start)
        total_wall.append(time.perf_counter() - wall)
    return {
        "features": statistics.median(features_cpu) * 1000,
        "total": statistics.median(total_cpu) * 1000,
        "total_p90": float(np.percentile(total_cpu, 90)) * 1000,
        "wall": statistics.median(total_wall) * 1000,
    }


async def hesitations(
    engine: WhisperEngine, detector: TurnDetector, limits: TurnLimits
) -> tuple[int, list[str]]:
    cut = []
    for item in corpus():
        decision = await decide(_silence(LEAD) + item.audio + _silence(2.0), engine, detector, limits)
        ended = decision.ended_at
        if ended is not None and LEAD + item.pause_start <= ended <= LEAD + item.pause_end:
            cut.append(f"{item} -> {decision.text!r}")
    return len(corpus()), cut


async def fluent_ends(engine: WhisperEngine, detector: TurnDetector) -> dict[str, list[float]]:
    """Per voice, the silence (s) after which each command ended on the detector's word."""
    early: dict[str, list[float]] = {}
    for voice in ("piper", "espeak"):
        early[voice] = []
        for _text, pcm in fluent(voice):
            decision = await decide(_silence(LEAD) + pcm + _silence(2.0), engine, detector)
            if decision.reason == "turn-detector" and decision.ended_at is not None:
                early[voice].append(decision.ended_at - LEAD - len(pcm) / 32000)
    return early


async def _paced(pcm: bytes):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    for index, start in enumerate(range(0, len(pcm), 640)):
        await asyncio.sleep(max(0.0, started + index * 0.02 - time.monotonic()))
        yield pcm[start : start + 640]


async def live(tmp: Path) -> list[float]:
    """Last speech sample -> transcript, the real service, piper commands in real time."""
    stt = ServiceProcess("wyoming_stt", "--data-dir", str(tmp / "stt"), "--language", "en").start()
    times = []
    try:
        stt.wait_listening(60)
        await stt.wait_ready()
        for _text, pcm in fluent("piper"):
            sent_at = time.monotonic()
            async for item in transcribe_stream(
                stt.uri, _paced(_silence(LEAD) + pcm + _silence(3.0)), FMT, language="en",
                vad_sensitivity="default", timeout=60,
            ):  # fmt: skip
                if isinstance(item, Transcription):
                    times.append(item.final_at - (sent_at + LEAD + len(pcm) / 32000))
    finally:
        stt.stop()
    return times


async def main() -> None:
    cli = parser(__doc__ or "")
    cli.add_argument("--runs", type=int, default=30, help="Detector evaluations to time")
    cli.add_argument("--no-live", action="store_true", help="Skip the real STT service")
    args = cli.parse_args()
    detector = TurnDetector()
    detector.load()
    cost = detector_cost(detector, args.runs)
    with tempfile.TemporaryDirectory(prefix="bench-turn-") as tmp_dir:
        tmp = Path(tmp_dir)
        settings = settings_from_args(
            build_parser().parse(["--model", "base", "--data-dir", str(tmp / "stt"), "--language", "en"])
        )
        pool = PriorityPool(1, "bench-decode")
        engine = WhisperEngine(settings, resolve_model("base", settings.data_dirs, True), pool)
        await engine.load()
        try:
            total, cut_default = await hesitations(engine, detector, TurnLimits())
            _, cut_relaxed = await hesitations(engine, detector, TurnLimits().for_sensitivity("relaxed"))
            early = await fluent_ends(engine, detector)
        finally:
            pool.shutdown()
        latency = [] if args.no_live else await live(tmp)
    said = {voice: len(fluent(voice)) for voice in early}
    all_early = early["piper"] + early["espeak"]
    figures = [
        Figure("turn detector: one evaluation, CPU of its thread (median)", cost["total"], "ms", 50,
               note=f"{args.runs} runs; features {cost['features']:.1f} ms of it; one thread"),
        Figure("turn detector: one evaluation, CPU (p90)", cost["total_p90"], "ms"),
        Figure("turn detector: one evaluation, wall time (median)", cost["wall"], "ms"),
        Figure("hesitation corpus: turns ended inside a pause (vad_sensitivity default)",
               len(cut_default), f"of {total}", 0, note="; ".join(cut_default) or "none"),
        Figure("hesitation corpus: turns ended inside a pause (relaxed)", len(cut_relaxed), f"of {total}", 0,
               note="; ".join(cut_relaxed) or "none"),
        Figure("commands without a pause ending on the detector, piper", len(early["piper"]),
               f"of {said['piper']}"),
        Figure("commands without a pause ending on the detector, espeak-ng", len(early["espeak"]),
               f"of {said['espeak']}"),
        Figure("silence before those ended (median)",
               statistics.median(all_early) * 1000 if all_early else 0.0, "ms",
               note="the VAD's own lag included; the rest wait 1.2 s"),
    ]  # fmt: skip
    if latency:
        figures += [
            Figure("STT: last speech sample -> transcript, before audio-stop (p50)",
                   float(np.percentile(latency, 50)) * 1000, "ms",
                   note=f"{len(latency)} piper commands in real time; final decode beam 5 included"),
            Figure("STT: same, p90", float(np.percentile(latency, 90)) * 1000, "ms"),
        ]  # fmt: skip
    report(figures, "End of turn (2-core machine)", args.json)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
