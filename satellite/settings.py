"""Satellite settings: frozen dataclasses built from argparse flags and SATELLITE_* variables."""

from __future__ import annotations

import argparse
import socket
from dataclasses import dataclass, field
from pathlib import Path

from wyoming_core.audio import AudioFormat
from wyoming_core.cli import EnvArgs, server_settings
from wyoming_core.logs import LOG_TRANSCRIPTS_HELP
from wyoming_core.server import ServerSettings

MIC_FORMAT = AudioFormat(16000, 2, 1)  # what wake word, VAD and STT all want


@dataclass(frozen=True)
class AudioSettings:
    mic_device: str | None = None
    mic_command: str | None = None
    mic_file: Path | None = None
    mic_format: AudioFormat = MIC_FORMAT  # format of --mic-command / --mic-device input
    snd_device: str | None = None
    snd_command: str | None = None
    snd_file: Path | None = None
    snd_format: AudioFormat = AudioFormat(22050, 2, 1)
    chunk_seconds: float = 0.02
    # How far ahead of real time audio is handed to the speaker: the most a barge-in can still let out.
    playback_lead: float = 0.06
    # Longest reply or announcement in seconds of audio, so also the most queued for the
    # speaker at once (HA sends a reply faster than real time); the rest is cut with an error.
    max_playback_seconds: float = 300.0
    mic_file_loop: bool = False


@dataclass(frozen=True)
class WakeSettings:
    names: tuple[str, ...] = ("okay_nabu",)
    threshold: float | None = None  # None: each model's own cut-off
    refractory: float = 2.0
    uri: str | None = None


@dataclass(frozen=True)
class VadSettings:
    threshold: float = 0.5
    end_silence: float = 0.6
    no_speech_timeout: float = 5.0
    max_speech: float = 15.0
    preroll: float = 0.4
    # End of turn (satellite/endpointing.py): a local detector ("smart-turn" or "off"), its
    # model (None: pipecat-ai's), the silence before it is asked, the longest pause waited out
    # and its threshold.
    turn_detector: str = "off"
    turn_model: Path | None = None
    turn_silence: float = 0.2
    turn_max_silence: float = 1.2
    turn_threshold: float = 0.5


@dataclass(frozen=True)
class TurnSettings:
    # Instances of each service (none: found over zeroconf); turns spread over several and fail over.
    stt_uris: tuple[str, ...] = ()
    tts_uris: tuple[str, ...] = ()
    handle_uris: tuple[str, ...] = ()
    language: str | None = None
    voice: str | None = None
    follow_up: float = 4.0
    stt_timeout: float = 15.0
    handle_timeout: float = 30.0
    tts_timeout: float = 30.0
    discover_seconds: float = 3.0
    service_filter: str | None = None  # only discovered services whose name contains this
    # Exact zeroconf instance names to use (pinned): no other advert is trusted for that kind.
    stt_name: str | None = None
    tts_name: str | None = None
    handle_name: str | None = None
    # What was heard and answered in the log at INFO (otherwise DEBUG); both modes.
    log_transcripts: bool = False
    # Asked of an STT that ends turns itself (requires_external_vad false).
    vad_sensitivity: str = "default"


@dataclass(frozen=True)
class SoundSettings:
    # "default" (generated tone), "none", or a WAV path.
    wake: str = "default"
    done: str = "default"
    error: str = "default"
    timer: str = "default"
    enabled: bool = True


@dataclass(frozen=True)
class BargeInSettings:
    enabled: bool = True
    # Speech (by VAD) louder than vad_level dBFS also interrupts; off by default: without
    # echo cancellation the satellite would hear its own reply.
    vad: bool = False
    vad_level: float = -30.0


@dataclass(frozen=True)
class SatelliteSettings:
    name: str = field(default_factory=lambda: socket.gethostname().split(".")[0] or "satellite")
    area: str | None = None
    server: ServerSettings | None = None  # set: Home Assistant mode
    audio: AudioSettings = AudioSettings()
    wake: WakeSettings = WakeSettings()
    vad: VadSettings = VadSettings()
    turn: TurnSettings = TurnSettings()
    sounds: SoundSettings = SoundSettings()
    barge_in: BargeInSettings = BargeInSettings()
    debug_recording_dir: Path | None = None
    exit_after_turns: int = 0  # 0: run forever
    turn_report: Path | None = None  # each turn's result as a JSON line (satellite.report)
    debug: bool = False

    @property
    def ha_mode(self) -> bool:
        return self.server is not None


def _fmt(text: str) -> AudioFormat:
    try:
        rate, width, channels = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not RATE:WIDTH:CHANNELS (e.g. 22050:2:1)") from None
    return AudioFormat(rate, width, channels)


def _uris(given: list[str] | None) -> tuple[str, ...]:
    """`--stt-uri A --stt-uri B,C` (or SATELLITE_STT_URI=A,B,C): (A, B, C), each once."""
    parts = (part.strip() for value in given or () for part in value.split(","))
    return tuple(dict.fromkeys(part for part in parts if part))


def build_parser() -> EnvArgs:
    args = EnvArgs("satellite", "Room satellite: wake word, VAD, streamed turns, barge-in", "SATELLITE_")
    # No --uri: standalone mode; --uri tcp://0.0.0.0:10700: Home Assistant mode.
    args.add_server_args("")
    add = args.add
    add("--name", default=None, help="Satellite name shown in Home Assistant (default: host name)")
    add("--area", default=None, help="Area (room) the satellite is in")
    add(
        "--http-token",
        default=None,
        help="Token the status page's controls (--http) must send; without it they work only when "
        "--http is a loopback address",
    )
    # Audio
    add("--mic-device", default=None, help="pyaudio input device (index or name)")
    add("--mic-command", default=None, help="Command writing raw mic PCM to stdout (e.g. arecord ...)")
    add("--mic-file", type=Path, default=None, help="WAV read as the mic at real-time pace, then silence")
    add("--mic-file-loop", action="store_true", help="Repeat --mic-file instead of silence after it")
    add("--mic-format", type=_fmt, default=MIC_FORMAT, help="RATE:WIDTH:CHANNELS of --mic-command/device")
    add("--snd-device", default=None, help="pyaudio output device (index or name)")
    add("--snd-command", default=None, help="Command reading raw PCM on stdin (e.g. aplay ...)")
    add("--snd-file", type=Path, default=None, help="WAV receiving everything played, gaps included")
    add("--snd-format", type=_fmt, default=AudioFormat(22050, 2, 1), help="RATE:WIDTH:CHANNELS of speaker")
    add(
        "--max-playback-seconds",
        type=float,
        default=AudioSettings.max_playback_seconds,
        help="Longest reply or announcement, in seconds of audio (so also the most queued for the "
        "speaker): the rest is dropped (HA gets an 'audio-too-long' error; standalone, the turn "
        "ends with the error sound)",
    )
    add("--list-devices", action="store_true", help="List pyaudio devices and exit")
    # Wake
    add(
        "--wake-word",
        action="append",
        default=None,
        help="Wake word model: okay_nabu, hey_jarvis, alexa, hey_mycroft (microWakeWord), "
        "oww:NAME (openWakeWord), or a .json/.tflite path; repeatable",
        shown_default="okay_nabu",
    )
    add("--wake-threshold", type=float, default=None, help="Detection threshold 0-1 (default: per model)")
    add("--wake-refractory", type=float, default=2.0, help="Seconds to ignore the wake word after one")
    add("--wake-uri", default=None, help="Remote Wyoming wake service instead of in-process models")
    # VAD
    add("--vad-threshold", type=float, default=0.5, help="Silero speech probability threshold")
    add("--end-silence", type=float, default=0.6, help="Seconds of silence that end the request")
    add("--no-speech-timeout", type=float, default=5.0, help="Give up if nobody speaks after the wake")
    add("--max-speech", type=float, default=15.0, help="Longest request in seconds")
    add("--preroll", type=float, default=0.4, help="Seconds of audio before the wake kept for STT")
    add(
        "--vad-sensitivity",
        choices=("default", "aggressive", "relaxed"),
        default="default",
        help="Standalone, with an STT that ends turns itself (requires_external_vad false): how "
        "soon it ends them (relaxed: never before 0.9 s of silence; aggressive: sooner)",
    )
    add(
        "--turn-detector",
        choices=("off", "smart-turn"),
        default="off",
        help="smart-turn: after --turn-silence of silence Smart Turn v3.2 hears whether the user "
        "sounded finished (about 35 ms of one core per pause; needs pipecat-ai, see README): "
        "finished ends the request at once (Home Assistant mode: audio-stop), otherwise it ends "
        "after --turn-max-silence",
    )
    add("--turn-model", type=Path, default=None, help="Smart Turn ONNX file (default: pipecat-ai's)")
    add("--turn-silence", type=float, default=0.2, help="Silence before the turn detector is asked")
    add(
        "--turn-max-silence",
        type=float,
        default=1.2,
        help="Longest pause waited out when the turn detector or the STT decides the end",
    )
    add("--turn-threshold", type=float, default=0.5, help="Turn detector probability that ends the turn")
    # Standalone services
    for kind, what in (("stt", "STT"), ("tts", "TTS"), ("handle", "Handle/conversation")):
        add(
            f"--{kind}-uri",
            action="append",
            default=None,
            metavar="URI[,URI...]",
            help=f"{what} service (standalone mode; zeroconf if not given); repeatable or "
            "comma-separated: turns spread over the instances and fail over"
            + (" (the conversation stays with one while it answers)" if kind == "handle" else ""),
        )
    add("--language", default=None, help="Language for STT, handle and TTS")
    add("--voice", default=None, help="TTS voice")
    add("--follow-up", type=float, default=4.0, help="Listen without wake word after a question (0: off)")
    add("--stt-timeout", type=float, default=15.0, help="Seconds for the transcript after speech ends")
    add("--handle-timeout", type=float, default=30.0, help="Seconds for the handle service to answer")
    add("--tts-timeout", type=float, default=30.0, help="Seconds between TTS audio chunks")
    add("--discover-seconds", type=float, default=3.0, help="How long to browse zeroconf for services")
    add("--service-filter", default=None, help="Use only discovered services whose name contains this")
    for kind, what in (("stt", "STT"), ("tts", "TTS"), ("handle", "handle")):
        add(
            f"--{kind}-name",
            default=None,
            help=f"Use only the {what} service advertised under exactly this zeroconf name "
            f"(see python -m discovery); when --{kind}-uri is not given",
        )
    # Sounds
    for kind, what in (
        ("wake", "when woken"),
        ("done", "when done"),
        ("error", "on error"),
        ("timer", "timer"),
    ):
        add(f"--{kind}-sound", default="default", help=f"Sound {what}: default, none or a WAV path")
    add("--no-sounds", action="store_true", help="Play no feedback sounds")
    # Barge-in
    add("--no-barge-in", action="store_true", help="Do not let the wake word interrupt a reply")
    add("--barge-in-vad", action="store_true", help="Also interrupt on loud speech (needs echo cancel)")
    add("--barge-in-vad-level", type=float, default=-30.0, help="dBFS speech must exceed for --barge-in-vad")
    # Misc
    add("--debug-recording-dir", type=Path, default=None, help="Save what the mic heard per turn (WAV)")
    add("--exit-after-turns", type=int, default=0, help="Exit after this many turns (0: never)")
    add(
        "--turn-report",
        type=Path,
        default=None,
        metavar="FILE",
        help="Append each turn's result to FILE as a JSON line: turn, outcome (answered, failed, "
        "no-speech, interrupted), transcript, reply, error (the file is created mode 0600)",
    )
    add("--log-transcripts", action="store_true", help=LOG_TRANSCRIPTS_HELP)
    return args


def settings_from_args(ns: argparse.Namespace) -> SatelliteSettings:
    audio = AudioSettings(
        mic_device=ns.mic_device,
        mic_command=ns.mic_command,
        mic_file=ns.mic_file,
        mic_format=ns.mic_format,
        snd_device=ns.snd_device,
        snd_command=ns.snd_command,
        snd_file=ns.snd_file,
        snd_format=ns.snd_format,
        max_playback_seconds=ns.max_playback_seconds,
        mic_file_loop=ns.mic_file_loop,
    )
    if not audio.max_playback_seconds > 0:
        raise SystemExit("--max-playback-seconds must be more than 0")
    wake = WakeSettings(
        names=tuple(ns.wake_word or ("okay_nabu",)),
        threshold=ns.wake_threshold,
        refractory=ns.wake_refractory,
        uri=ns.wake_uri,
    )
    vad = VadSettings(
        threshold=ns.vad_threshold,
        end_silence=ns.end_silence,
        no_speech_timeout=ns.no_speech_timeout,
        max_speech=ns.max_speech,
        preroll=ns.preroll,
        turn_detector=ns.turn_detector,
        turn_model=ns.turn_model,
        turn_silence=ns.turn_silence,
        turn_max_silence=ns.turn_max_silence,
        turn_threshold=ns.turn_threshold,
    )
    if not 0.0 < vad.turn_silence <= vad.turn_max_silence:
        raise SystemExit("--turn-silence must be more than 0 and at most --turn-max-silence")
    if not 0.0 < vad.turn_threshold < 1.0:
        raise SystemExit("--turn-threshold must be between 0 and 1")
    turn = TurnSettings(
        stt_uris=_uris(ns.stt_uri),
        tts_uris=_uris(ns.tts_uri),
        handle_uris=_uris(ns.handle_uri),
        language=ns.language,
        voice=ns.voice,
        follow_up=ns.follow_up,
        stt_timeout=ns.stt_timeout,
        handle_timeout=ns.handle_timeout,
        tts_timeout=ns.tts_timeout,
        discover_seconds=ns.discover_seconds,
        service_filter=ns.service_filter,
        stt_name=ns.stt_name,
        tts_name=ns.tts_name,
        handle_name=ns.handle_name,
        log_transcripts=ns.log_transcripts,
        vad_sensitivity=ns.vad_sensitivity,
    )
    sounds = SoundSettings(
        wake=ns.wake_sound,
        done=ns.done_sound,
        error=ns.error_sound,
        timer=ns.timer_sound,
        enabled=not ns.no_sounds,
    )
    barge = BargeInSettings(enabled=not ns.no_barge_in, vad=ns.barge_in_vad, vad_level=ns.barge_in_vad_level)
    base = SatelliteSettings()
    return SatelliteSettings(
        name=ns.name or base.name,
        area=ns.area,
        server=server_settings(ns) if ns.uri else None,
        audio=audio,
        wake=wake,
        vad=vad,
        turn=turn,
        sounds=sounds,
        barge_in=barge,
        debug_recording_dir=ns.debug_recording_dir,
        exit_after_turns=ns.exit_after_turns,
        turn_report=ns.turn_report,
        debug=ns.debug,
    )
