"""Satellite benchmark: the whole turn as the user feels it, barge-in, wake word CPU, memory.

Runs the satellite as a process against the real STT and TTS services. All times are on the
one system monotonic clock the processes share:

- the true figure: the last speech sample written to the satellite's microphone -> the first
  non-silent sample of the reply written to its speaker, p50 and p90, timed on the audio
  itself (a gated mic that notes when each request began, `--mic-command`, and a timed
  speaker, `--snd-command`). Each request is said once the last turn is over. Handlers: an
  echo handle service ("You said ..."), and our conversation service on a fake Ollama (in
  this process) that answers like an echo at a fixed token rate, whose own time to its first
  sentence is its own row. The satellite's split of the turn (its end of speech ->
  transcript, TTS first chunk, chunk -> sound) is listed as detail. The same in Home
  Assistant mode (HA 2026.2.3 from scripts/setup-ha.sh runs the pipeline on our services, the
  conversation service answering like an echo; `--ha` picks the satellite flags per run);
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Figure, p90, parser, report
from satellite.settings import WakeSettings
from satellite.wake import LocalWake
from tests.satellite.helpers import (
    WAKE_REQUEST,
    GatedMic,
    SatelliteRun,
    TimedSpeaker,
    barge_in_ms,
    mic_wav,
    silence,
    sound_spans,
    speech,
)
from tests.support.fake_ollama import FakeOllama
from tests.support.services import ServiceProcess, free_port

# The phrase for the echo handler; a question the conversation service leaves to the
# model for the other (device commands are answered without it).
ECHO_REQUEST = "Hey Jarvis, turn on the kitchen lights."
ECHO_REPLY = "You said: turn on the kitchen lights."
LLM_REQUEST = "Hey Jarvis, what is the weather like tomorrow?"
HA_VERSION = "2026.2.3"
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


@dataclass
class TurnFigures:
    """Per turn, seconds: the true figure (last speech sample into the mic -> first sound of
    the reply out of the speaker, timed on the audio itself), the model's own time to its first
    sentence (0 for the echo handler), and the satellite's own split (turn-timing lines)."""

    true: list[float]
    model: list[float]
    timings: list[dict[str, float]]
    rss: float


def p50(values: list[float]) -> float:
    return float(np.percentile(values, 50))


def _first_sound_after(speaker: TimedSpeaker, after: float) -> float | None:
    """Monotonic time of the first non-silent 10 ms block the speaker got after `after`."""
    started = speaker.started_at()
    if started is None:
        return None
    for start, _end in sound_spans(speaker.pcm(), speaker.rate, gap=0.05):
        if started + start > after:
            return started + start
    return None


async def true_turns(
    tmp: Path,
    turns_n: int,
    request: str,
    handle_uri: str,
    stt_uri: str,
    tts_uri: str,
    sat_args: list[str],
    model_times: Callable[[], list[float]] | None = None,
    connect: Callable[[SatelliteRun], Awaitable[None]] | None = None,
) -> TurnFigures:
    """`turns_n` turns of `request`, each said once the last one is over (a gated mic), the
    speaker timed (--snd-command), so both ends are measured on the audio itself. Standalone
    on the given services; with `connect` (Home Assistant mode) `sat_args` say where to listen
    and `connect(sat)` gets Home Assistant to it."""
    pcm = speech(request)
    speech_end = _speech_end(pcm)
    mic = GatedMic(tmp / "mic", silence(1.0), *([pcm] * turns_n))
    speaker = TimedSpeaker(tmp / "speaker.raw")
    where = (
        []
        if connect is not None
        else ["--stt-uri", stt_uri, "--tts-uri", tts_uri, "--handle-uri", handle_uri]
    )
    sat = await SatelliteRun(
        "--mic-command", mic.command(), "--snd-command", speaker.command(),
        "--wake-word", "hey_jarvis", "--follow-up", "0", *where, *sat_args,
    ).start()  # fmt: skip
    peak: list[float] = []
    sampler = _rss_sampler(sat, peak)
    ends: list[float] = []
    try:
        if connect is not None:
            await connect(sat)
        else:
            await sat.wait_for("is ready", timeout=120)
        await asyncio.sleep(1.0)
        for n in range(1, turns_n + 1):
            mic.open(n)
            await sat.wait_for(r"\(turn (over|failed)\)", count=n, timeout=120)
            said = mic.said_at(n)
            assert said is not None
            ends.append(said + speech_end)
            await asyncio.sleep(1.0)  # the done sound and the mic's echo of nothing
    finally:
        sampler.cancel()
        await sat.stop()
    log = sat.log()
    if "turn failed" in log:
        raise RuntimeError(f"a turn failed:\n{log[-4000:]}")
    true = []
    for end in ends:
        first = _first_sound_after(speaker, end)
        if first is None:
            raise RuntimeError(f"no reply heard after the request ending at {end:.3f}:\n{log[-4000:]}")
        true.append(first - end)
    timings = [
        {k: float(v) for k, v in re.findall(r"(\w+)=(-?[0-9.]+)", line)}
        for line in re.findall(r"turn-timing .*", log)
    ]
    model = model_times() if model_times is not None else [0.0] * turns_n
    return TurnFigures(true, model[-turns_n:], timings, max(peak) if peak else 0.0)


async def standalone(
    tmp: Path,
    turns_n: int,
    handler: str,
    stt_args: list[str],
    sat_args: list[str],
    fake_model: dict[str, float],
) -> TurnFigures:
    """Real STT and TTS; the handler is an echo handle service ("echo") or our conversation
    service on the fake Ollama answering like an echo ("llm")."""
    stt = ServiceProcess("wyoming_stt", "--data-dir", str(tmp / "stt"), "--language", "en", *stt_args).start()
    tts = ServiceProcess("wyoming_tts", "--data-dir", str(tmp / "tts")).start()
    services = [stt, tts]
    try:
        for service in services:
            service.wait_listening(60)
        await stt.wait_ready()
        await tts.wait_ready()
        if handler == "echo":
            handle = ServiceProcess(
                "tests.satellite.fake_services", "handle", "--reply", ECHO_REPLY, "--delay", "0"
            ).start()
            services.append(handle)
            handle.wait_listening(60)
            return await true_turns(tmp, turns_n, ECHO_REQUEST, handle.uri, stt.uri, tts.uri, sat_args)
        async with FakeOllama(reply=_echo_like, **fake_model) as fake:  # type: ignore[arg-type]
            llm = ServiceProcess("wyoming_llm", "--ollama-url", fake.url, "--data-dir", str(tmp / "llm"))
            services.append(llm.start())
            llm.wait_listening(60)
            await llm.wait_ready(marker="is loaded and warm")

            def model_times() -> list[float]:
                chats = [c for c in fake.chats if c.completed and c.first_sentence_at() is not None]
                return [c.first_sentence_at() - c.received_at for c in chats]  # type: ignore[operator]

            return await true_turns(
                tmp, turns_n, LLM_REQUEST, llm.uri, stt.uri, tts.uri, sat_args, model_times
            )
    finally:
        for service in services:
            service.stop()


async def home_assistant(
    tmp: Path, turns_n: int, sat_args: list[str], fake_model: dict[str, float]
) -> TurnFigures:
    """Home Assistant 2026.2.3 runs the pipeline (our STT, conversation service on the fake
    Ollama answering like an echo, TTS) for our satellite, added as HA's UI would."""
    from tests.ha.harness import HomeAssistant, ha_ready

    if not ha_ready(HA_VERSION):
        raise RuntimeError(f"Home Assistant {HA_VERSION} is not set up: scripts/setup-ha.sh")
    stt = ServiceProcess("wyoming_stt", "--data-dir", str(tmp / "stt"), "--language", "en").start()
    tts = ServiceProcess("wyoming_tts", "--data-dir", str(tmp / "tts")).start()
    services = [stt, tts]
    ha = await HomeAssistant(HA_VERSION).start()
    try:
        async with FakeOllama(reply=_echo_like, **fake_model) as fake:  # type: ignore[arg-type]
            llm = ServiceProcess("wyoming_llm", "--ollama-url", fake.url, "--data-dir", str(tmp / "llm"))
            services.append(llm.start())
            for service in services:
                service.wait_listening(60)
            await stt.wait_ready()
            await tts.wait_ready(marker="is ready")
            await llm.wait_ready(marker="is loaded and warm")
            await ha.call(
                "set_pipeline",
                stt_engine=await ha.entity_id(stt, "stt"),
                conversation_engine=await ha.entity_id(llm, "conversation"),
                tts_engine=await ha.entity_id(tts, "tts"),
            )
            port = free_port()

            async def connect(sat: SatelliteRun) -> None:
                await sat.wait_for(r"satellite is listening on", timeout=120)
                entry = await ha.call("add_entry", host="127.0.0.1", port=port)
                assert entry["type"] == "create_entry", entry
                await sat.wait_for(r"asked for audio \(run-satellite\)", timeout=60)

            def model_times() -> list[float]:
                chats = [c for c in fake.chats if c.completed and c.first_sentence_at() is not None]
                return [c.first_sentence_at() - c.received_at for c in chats]  # type: ignore[operator]

            return await true_turns(
                tmp, turns_n, LLM_REQUEST, "", "", "",
                ["--uri", f"tcp://127.0.0.1:{port}", "--name", "Bench", *sat_args],
                model_times, connect,
            )  # fmt: skip
    finally:
        await ha.stop()
        for service in services:
            service.stop()


def _ha_set_up() -> bool:
    from tests.ha.harness import ha_ready

    return ha_ready(HA_VERSION)


def _echo_like(messages: list[dict[str, Any]]) -> str:
    users = [str(m.get("content", "")) for m in messages if m.get("role") == "user"]
    return f"You said: {users[-1] if users else 'nothing'}"


def turn_figures(
    label: str, run: TurnFigures, target50: float | None, target90: float | None, note: str
) -> list[Figure]:
    t = run.timings
    rows = [
        Figure(
            f"{label}: last speech sample -> first reply audio, p50",
            p50(run.true) * 1000,
            "ms",
            target50,
            note=note,
        ),
        Figure(f"{label}: same, p90", p90(run.true) * 1000, "ms", target90),
        Figure(f"{label}: model's own time to its first sentence, p50", p50(run.model) * 1000, "ms"),
    ]
    if t:
        rows += [
            Figure(
                f"{label}: satellite end of speech -> transcript (median)",
                statistics.median(x["eos_to_transcript"] for x in t) * 1000,
                "ms",
            ),
            Figure(
                f"{label}: TTS first sentence sent -> first audio chunk (median)",
                statistics.median(x["tts_first_chunk"] for x in t) * 1000,
                "ms",
            ),
            Figure(
                f"{label}: first audio chunk -> it sounds (median)",
                statistics.median(x["chunk_to_sound"] for x in t) * 1000,
                "ms",
            ),
            Figure(
                f"{label}: satellite end of speech -> first audio, excl. model (median)",
                statistics.median(x["eos_to_audio_excl_model"] for x in t) * 1000,
                "ms",
            ),
        ]
    return rows  # fmt: skip


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
    cli.add_argument("--turns", type=int, default=8, help="Turns to time per handler")
    cli.add_argument("--handlers", default="echo,llm", help="Comma-separated: echo, llm")
    cli.add_argument("--barge-ins", type=int, default=3, help="Barge-ins to time (0: skip)")
    cli.add_argument("--no-cpu", action="store_true", help="Skip the wake word and idle CPU figures")
    cli.add_argument("--stt-args", default="", help="More STT flags, e.g. '--model tiny.en'")
    cli.add_argument("--satellite-args", default="", help="More satellite flags")
    cli.add_argument(
        "--ha",
        default=None,
        metavar="LABEL=FLAGS;...",
        help="Home Assistant mode (HA 2026.2.3 runs the pipeline), once per semicolon-separated "
        "run, e.g. 'plain=;detector=--turn-detector smart-turn' (default: 'defaults=' when "
        "scripts/setup-ha.sh has set HA up; '' skips it)",
    )
    cli.add_argument("--tokens-per-second", type=float, default=20.0, help="The fake model's speed")
    cli.add_argument("--first-token-delay", type=float, default=0.3, help="The fake model's prompt time")
    args = cli.parse_args()
    stt_args, sat_args = shlex.split(args.stt_args), shlex.split(args.satellite_args)
    fake_model = {"tokens_per_second": args.tokens_per_second, "first_token_delay": args.first_token_delay}
    model = (
        f"fake Ollama at {args.tokens_per_second:g} tokens/s, first token after {args.first_token_delay:g} s"
    )
    figures: list[Figure] = []
    rss = 0.0
    with tempfile.TemporaryDirectory(prefix="bench-satellite-") as tmp_dir:
        tmp = Path(tmp_dir)
        for handler in [h.strip() for h in args.handlers.split(",") if h.strip()]:
            run = await standalone(tmp / handler, args.turns, handler, stt_args, sat_args, fake_model)
            rss = max(rss, run.rss)
            what = "echo handler" if handler == "echo" else f"conversation service, {model}"
            figures += turn_figures(
                f"standalone, {handler}",
                run,
                600 if handler == "echo" else None,
                800 if handler == "echo" else None,
                f"{len(run.true)} turns; {what}; STT {args.stt_args or 'defaults'}; "
                f"load average {os.getloadavg()[0]:.1f} after",
            )
        ha_runs = args.ha if args.ha is not None else ("defaults=" if _ha_set_up() else "")
        for run_spec in [r for r in ha_runs.split(";") if r.strip()]:
            label, _, flags = run_spec.partition("=")
            run = await home_assistant(tmp / f"ha-{label}", args.turns, shlex.split(flags), fake_model)
            figures += turn_figures(
                f"Home Assistant mode, {label}",
                run,
                900,
                None,
                f"{len(run.true)} turns; HA {HA_VERSION}; conversation service, {model}; "
                f"satellite {flags or 'defaults'}; load average {os.getloadavg()[0]:.1f} after",
            )
        if args.barge_ins:
            barge = await barge_ins(tmp, args.barge_ins)
            figures += [
                Figure("barge-in: detection -> playback silent (max)", max(barge), "ms", 200,
                       note=f"{len(barge)} barge-ins"),
                Figure("barge-in: detection -> playback silent (median)", statistics.median(barge), "ms"),
            ]  # fmt: skip
        if not args.no_cpu:
            four = ("okay_nabu", "hey_jarvis", "alexa", "hey_mycroft")
            core = "% of a core"
            figures += [
                Figure("wake word CPU, 1 microWakeWord model", wake_cpu(120.0, ("okay_nabu",)), core, 2),
                Figure("wake word CPU, 4 microWakeWord models", wake_cpu(60.0, four), core),
                Figure("wake word CPU, 1 openWakeWord model", wake_cpu(30.0, ("oww:hey_jarvis",)), core),
                Figure("satellite process CPU while waiting for the wake word", await idle_cpu(tmp), core),
            ]
    if rss:
        figures.append(Figure("satellite resident memory (peak during turns)", rss, "MB", 100))
    report(figures, "Satellite (2-core machine)", args.json)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
