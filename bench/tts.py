"""TTS benchmark: time to first audio, total time and real-time factor, plain and streaming;
4 concurrent clients versus the same requests one after another.

Two services run on the bundled en_US-joe-medium voice with the same settings: the normal one
(first sentence split at clause boundaries) and one with --no-clause-split, which gives the time
to synthesize the first sentence whole. Streaming requests send the text in 4-character pieces
(cut mid-word, as an LLM streams it) as fast as the service takes them. Each figure is the
median of --repeat runs; requests are sent one at a time except in the concurrency figure.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common import Figure, parser, report
from tests.support.services import ServiceProcess
from wyoming_core.client import Speech, synthesize, synthesize_streamed

ONE_LINE = "The kitchen lights are on."
FIRST_SENTENCE = (
    "When you get home tonight after the long meeting with the team, please remember to turn off "
    "all the lights in the kitchen and lock the back door."
)
THREE_SENTENCES = f"{FIRST_SENTENCE} The weather will be sunny and warm tomorrow. Have a good night."


def pieces(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


async def timed(request: Callable[[], Awaitable[Speech]]) -> tuple[float, float, float]:
    """(time to first audio, total time, real-time factor) of one request."""
    started = time.monotonic()
    speech = await request()
    total = time.monotonic() - started
    return speech.first_audio_at - started, total, total / max(speech.seconds, 1e-6)


def cpu_seconds(service: ServiceProcess) -> float:
    """CPU time the service process has used so far (all threads)."""
    assert service.proc is not None
    fields = Path(f"/proc/{service.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(*args: str) -> ServiceProcess:
    data_dir = tempfile.mkdtemp(prefix="tts-bench-")
    return ServiceProcess("wyoming_tts", "--data-dir", data_dir, *args).start()


async def main() -> None:
    cli = parser(__doc__ or "")
    cli.add_argument("--repeat", type=int, default=5, help="Runs per figure (median)")
    args = cli.parse_args()
    split, whole = start(), start("--no-clause-split")
    try:
        for service in (split, whole):
            service.wait_listening()
            await service.wait_ready(marker="Voice en_US-joe-medium is ready")
            await synthesize(service.uri, ONE_LINE)  # warm-up
        uri = split.uri
        figures: list[Figure] = []
        cases = {
            "one-line reply, plain": lambda: synthesize(uri, ONE_LINE),
            "one-line reply, streaming": lambda: synthesize_streamed(uri, pieces(ONE_LINE)),
            "three-sentence reply, plain": lambda: synthesize(uri, THREE_SENTENCES),
            "three-sentence reply, streaming": lambda: synthesize_streamed(uri, pieces(THREE_SENTENCES)),
            "first sentence whole": lambda: synthesize(whole.uri, FIRST_SENTENCE),
        }
        # Round-robin: every case sees the same (shared, changing) machine load, and the ratios
        # below compare runs taken back to back.
        runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in cases}
        for _ in range(args.repeat):
            for name, request in cases.items():
                runs[name].append(await timed(request))
        for name in list(cases)[:-1]:
            ttfa, total, rtf = (statistics.median(r[i] for r in runs[name]) for i in range(3))
            figures += [
                Figure(f"{name}: time to first audio", ttfa * 1000, "ms"),
                Figure(f"{name}: total time", total * 1000, "ms"),
                Figure(f"{name}: real-time factor", rtf, "x"),
            ]
        whole_runs = [r[1] for r in runs["first sentence whole"]]
        whole_ms = statistics.median(whole_runs) * 1000
        figures.append(Figure("first sentence synthesized whole (no clause split)", whole_ms, "ms"))
        for mode in ("plain", "streaming"):
            ttfas = [r[0] for r in runs[f"three-sentence reply, {mode}"]]
            ratio = statistics.median(t / w for t, w in zip(ttfas, whole_runs, strict=True))
            figures.append(
                Figure(f"three-sentence {mode}: first audio / first sentence whole", ratio * 100, "%", 50)
            )

        async def four_sequential() -> tuple[float, float]:
            started, cpu = time.monotonic(), cpu_seconds(split)
            for _ in range(4):
                await synthesize(uri, THREE_SENTENCES)
            return time.monotonic() - started, cpu_seconds(split) - cpu

        async def four_concurrent() -> tuple[float, float]:
            started, cpu = time.monotonic(), cpu_seconds(split)
            await asyncio.gather(*(synthesize(uri, THREE_SENTENCES) for _ in range(4)))
            return time.monotonic() - started, cpu_seconds(split) - cpu

        # Alternated, so both see the same (shared, changing) machine load.
        sequential_runs, concurrent_runs = [], []
        for _ in range(max(1, args.repeat // 2)):
            sequential_runs.append(await four_sequential())
            concurrent_runs.append(await four_concurrent())
        sequential = statistics.median(r[0] for r in sequential_runs)
        concurrent = statistics.median(r[0] for r in concurrent_runs)
        seq_cores = statistics.median(cpu / wall for wall, cpu in sequential_runs)
        conc_cores = statistics.median(cpu / wall for wall, cpu in concurrent_runs)
        figures += [
            Figure("4 requests one after another", sequential * 1000, "ms"),
            Figure("4 concurrent clients", concurrent * 1000, "ms"),
            Figure("4 concurrent / one after another", concurrent / sequential * 100, "%", 60),
            Figure("cores the service used, one after another", seq_cores, "cores"),
            Figure("cores the service used, 4 concurrent", conc_cores, "cores"),
            Figure("service memory (RSS)", split.rss_mb(), "MB"),
            Figure("machine load average (1 min, shared machine)", os.getloadavg()[0], ""),
        ]
        report(figures, f"Text-to-speech (wyoming_tts, {os.cpu_count()} cores)", args.json)
    finally:
        split.stop()
        whole.stop()


if __name__ == "__main__":
    asyncio.run(main())
