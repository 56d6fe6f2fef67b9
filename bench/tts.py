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

from common import Figure, parser, report  # type: ignore[import-not-found]

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


async def measure(request: Callable[[], Awaitable[Speech]], repeat: int) -> tuple[float, float, float]:
    runs = [await timed(request) for _ in range(repeat)]
    return tuple(statistics.median(r[i] for r in runs) for i in range(3))  # type: ignore[return-value]


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
        }
        results = {}
        for name, request in cases.items():
            ttfa, total, rtf = await measure(request, args.repeat)
            results[name] = ttfa
            figures += [
                Figure(f"{name}: time to first audio", ttfa * 1000, "ms"),
                Figure(f"{name}: total time", total * 1000, "ms"),
                Figure(f"{name}: real-time factor", rtf, "x"),
            ]

        _, first_whole, _ = await measure(lambda: synthesize(whole.uri, FIRST_SENTENCE), args.repeat)
        figures.append(Figure("first sentence synthesized whole (no clause split)", first_whole * 1000, "ms"))
        for mode in ("plain", "streaming"):
            ratio = results[f"three-sentence reply, {mode}"] / first_whole
            figures.append(
                Figure(f"three-sentence {mode}: first audio / first sentence whole", ratio * 100, "%", 50)
            )

        async def four_sequential() -> float:
            started = time.monotonic()
            for _ in range(4):
                await synthesize(uri, THREE_SENTENCES)
            return time.monotonic() - started

        async def four_concurrent() -> float:
            started = time.monotonic()
            await asyncio.gather(*(synthesize(uri, THREE_SENTENCES) for _ in range(4)))
            return time.monotonic() - started

        sequential = statistics.median([await four_sequential() for _ in range(max(1, args.repeat // 2))])
        concurrent = statistics.median([await four_concurrent() for _ in range(max(1, args.repeat // 2))])
        figures += [
            Figure("4 requests one after another", sequential * 1000, "ms"),
            Figure("4 concurrent clients", concurrent * 1000, "ms"),
            Figure("4 concurrent / one after another", concurrent / sequential * 100, "%", 60),
            Figure("service memory (RSS)", split.rss_mb(), "MB"),
            Figure("machine load average (1 min, shared machine)", os.getloadavg()[0], ""),
        ]
        report(figures, f"Text-to-speech (wyoming_tts, {os.cpu_count()} cores)", args.json)
    finally:
        split.stop()
        whole.stop()


if __name__ == "__main__":
    asyncio.run(main())
