"""Settings for the STT service, built once from argparse/env."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from wyoming_core.cli import EnvArgs, server_settings
from wyoming_core.ha import HomeSettings, add_home_args, home_settings
from wyoming_core.logs import LOG_TRANSCRIPTS_HELP
from wyoming_core.models import default_data_dir
from wyoming_core.server import ServerSettings
from wyoming_core.workers import default_workers


@dataclass(frozen=True)
class SttSettings:
    server: ServerSettings
    model: str
    data_dirs: tuple[Path, ...]
    language: str | None  # None: detect
    compute_type: str
    beam_size: int
    # Encode the whole 30 s window even for a short request (wyoming_stt/window.py).
    full_window: bool
    initial_prompt: str | None
    cpu_threads: int
    workers: int
    local_files_only: bool
    # Silence after speech that ends the utterance on the server side.
    endpoint_silence: float
    # Send the final transcript as soon as the endpoint decode is ready (before audio-stop).
    early_transcript: bool
    early_silence: float
    partials: bool
    partial_interval: float
    partial_model: str
    vad_threshold: float
    debug: bool
    # Home Assistant whose exposed names the final decode listens for; None: no biasing.
    home: HomeSettings | None = None
    # Seconds between two readings of those names.
    names_refresh: float = 60.0
    # Transcripts in the log at INFO (otherwise DEBUG).
    log_transcripts: bool = False
    # End of turn (wyoming_stt/turn.py): "smart-turn" or "off"; the model file (None: pipecat-ai's).
    turn_detector: str = "smart-turn"
    turn_model: Path | None = None
    turn_silence: float = 0.2
    turn_max_silence: float = 1.2
    turn_threshold: float = 0.5
    # Partials are skipped while a decode would wait longer than this (seconds).
    shed_wait: float = 0.25
    # A new request is refused (`overloaded`) while a final decode would wait longer; 0: never.
    max_queue_wait: float = 10.0


def build_parser() -> EnvArgs:
    args = EnvArgs("wyoming_stt", "Wyoming speech-to-text on faster-whisper", "STT_")
    args.add_server_args("tcp://0.0.0.0:10300")
    args.add("--model", default="base", help="Size name (tiny.en, base, ...), model directory or hub id")
    args.add(
        "--data-dir",
        action="append",
        help="Where models are looked up and assembled (repeatable)",
        shown_default=str(default_data_dir("stt")),
    )
    args.add("--language", default="auto", help="Default language code, or 'auto' to detect")
    args.add("--compute-type", default="int8", help="CTranslate2 compute type (int8, float32, ...)")
    args.add(
        "--beam-size",
        type=int,
        default=5,
        help="Beam size for the final decode (5: right on short commands; 1: greedy; partials are greedy)",
    )
    args.add(
        "--full-window",
        action="store_true",
        help="Encode Whisper's whole 30 s window for every request (by default a short request "
        "is encoded with 10 s or more of silence after it, at least 15 s: about 2x faster)",
    )
    args.add("--initial-prompt", default=None, help="Text that primes the model's vocabulary and style")
    args.add("--cpu-threads", type=int, default=0, help="Threads per decode (0: all cores)")
    args.add("--workers", type=int, default=2, help="Decodes that may run at once")
    args.add("--local-files-only", action="store_true", help="Never download a model from the hub")
    args.add(
        "--endpoint-silence",
        type=float,
        default=0.15,
        help="Seconds of silence after speech that start a speculative final decode "
        "(discarded if speech resumes)",
    )
    args.add(
        "--early-transcript",
        action="store_true",
        help="End every turn in the service: send the final transcript as soon as the turn is over "
        "(see --turn-detector), before audio-stop, and tell clients so (requires_external_vad "
        "false); without it only requests that carry vad_sensitivity are ended early",
    )
    args.add(
        "--early-silence",
        type=float,
        default=0.5,
        help="With --turn-detector off: seconds of silence after which an early transcript is sent",
    )
    args.add(
        "--turn-detector",
        choices=("smart-turn", "off"),
        default="smart-turn",
        help="How the end of a turn is told from a pause, for clients that let the service end "
        "the turn (they send vad_sensitivity) or with --early-transcript: smart-turn (Smart Turn "
        "v3.2 hears whether the user sounded finished, the transcript must read finished too) or "
        "off (silence only)",
    )
    args.add(
        "--turn-model",
        type=Path,
        default=None,
        help="Smart Turn ONNX file",
        shown_default="pipecat-ai's smart-turn-v3.2-cpu.onnx",
    )
    args.add(
        "--turn-silence",
        type=float,
        default=0.2,
        help="Seconds of silence after which a finished-sounding turn ends",
    )
    args.add(
        "--turn-max-silence",
        type=float,
        default=1.2,
        help="Seconds of silence that end a turn however it sounded (a pause to think is shorter)",
    )
    args.add(
        "--turn-threshold",
        type=float,
        default=0.5,
        help="Turn detector probability (0-1) from which the user counts as finished",
    )
    args.add("--no-partials", action="store_true", help="Do not stream partial transcripts")
    args.add(
        "--partial-model",
        default="auto",
        help="Model for partial transcripts: 'auto' (tiny.en for English when installed), "
        "'same' (the main model) or a model name/directory",
    )
    args.add("--partial-interval", type=float, default=1.0, help="Seconds of new audio between partials")
    args.add("--vad-threshold", type=float, default=0.5, help="Speech probability threshold (0-1)")
    add_home_args(args, "the final transcript listens for the names of the devices and areas it exposes")
    args.add(
        "--ha-names-refresh",
        type=float,
        default=60.0,
        help="Seconds between two readings of Home Assistant's device and area names",
    )
    args.add("--log-transcripts", action="store_true", help=LOG_TRANSCRIPTS_HELP)
    args.add(
        "--shed-wait",
        type=float,
        default=0.25,
        help="Partial transcripts are skipped while a decode would wait longer than this many "
        "seconds for a worker (final transcripts are never skipped)",
    )
    args.add(
        "--max-queue-wait",
        type=float,
        default=10.0,
        help="Refuse a new request at once with an 'overloaded' error while a final decode would "
        "wait longer than this many seconds for a worker, so a client can try another instance "
        "(0: never refuse)",
    )
    return args


def settings_from_args(ns: argparse.Namespace) -> SttSettings:
    data_dirs = tuple(Path(d) for d in (ns.data_dir or [str(default_data_dir("stt"))]))
    language = None if ns.language in (None, "", "auto") else ns.language
    if not 0.0 < ns.vad_threshold < 1.0:
        raise SystemExit("--vad-threshold must be between 0 and 1")
    if ns.beam_size < 1 or ns.workers < 1 or ns.cpu_threads < 0:
        raise SystemExit("--beam-size and --workers must be at least 1, --cpu-threads at least 0")
    if ns.shed_wait < 0 or ns.max_queue_wait < 0:
        raise SystemExit("--shed-wait and --max-queue-wait must be 0 or more seconds")
    if ns.ha_names_refresh < 1:
        raise SystemExit("--ha-names-refresh must be at least 1 second")
    if not 0.0 < ns.turn_silence <= ns.turn_max_silence:
        raise SystemExit("--turn-silence must be more than 0 and at most --turn-max-silence")
    if not 0.0 < ns.turn_threshold < 1.0:
        raise SystemExit("--turn-threshold must be between 0 and 1")
    cpu_threads = ns.cpu_threads or default_workers()
    return SttSettings(
        server=server_settings(ns),
        model=ns.model,
        data_dirs=data_dirs,
        language=language,
        compute_type=ns.compute_type,
        beam_size=ns.beam_size,
        full_window=ns.full_window,
        initial_prompt=ns.initial_prompt,
        cpu_threads=cpu_threads,
        workers=ns.workers,
        local_files_only=ns.local_files_only,
        endpoint_silence=ns.endpoint_silence,
        early_transcript=ns.early_transcript,
        early_silence=ns.early_silence,
        partials=not ns.no_partials,
        partial_interval=ns.partial_interval,
        partial_model=ns.partial_model,
        vad_threshold=ns.vad_threshold,
        debug=ns.debug,
        home=home_settings(ns),
        names_refresh=ns.ha_names_refresh,
        log_transcripts=ns.log_transcripts,
        shed_wait=ns.shed_wait,
        max_queue_wait=ns.max_queue_wait,
        turn_detector=ns.turn_detector,
        turn_model=ns.turn_model,
        turn_silence=ns.turn_silence,
        turn_max_silence=ns.turn_max_silence,
        turn_threshold=ns.turn_threshold,
    )
