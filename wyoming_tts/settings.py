"""Settings for the TTS service, built once from argparse/env."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from wyoming_core.cli import EnvArgs, server_settings
from wyoming_core.models import default_data_dir
from wyoming_core.server import ServerSettings
from wyoming_core.workers import default_workers

DEFAULT_VOICE = "en_US-joe-medium"


@dataclass(frozen=True)
class TtsSettings:
    server: ServerSettings
    voice: str
    data_dirs: tuple[Path, ...]
    # Speaker of the default voice when a request names none (multi-speaker voices).
    speaker: str | None
    # None: the voice's own value from its .onnx.json.
    length_scale: float | None
    noise_scale: float | None
    noise_w_scale: float | None
    sentence_silence: float
    max_text_chars: int
    max_queued_requests: int
    # A new reply is refused (`overloaded`) while its first audio would wait longer (0: never).
    max_queue_wait: float
    workers: int
    threads_per_worker: int
    max_voices: int
    samples_per_chunk: int
    # Split the first sentence at clause boundaries so audio starts early.
    clause_split: bool
    # Fetch a voice that is not installed from the piper-voices hub (needs internet).
    download: bool
    debug: bool


def build_parser() -> EnvArgs:
    args = EnvArgs("wyoming_tts", "Wyoming text-to-speech on piper", "TTS_")
    args.add_server_args("tcp://0.0.0.0:10200")
    args.add("--voice", default=DEFAULT_VOICE, help="Default voice (NAME of NAME.onnx + NAME.onnx.json)")
    args.add(
        "--data-dir",
        action="append",
        help="Where voices are looked up (repeatable)",
        shown_default=str(default_data_dir("tts")),
    )
    args.add("--speaker", default=None, help="Default speaker (name or id) of the default voice")
    args.add("--length-scale", type=float, default=None, help="Speaking pace: > 1 slower, < 1 faster")
    args.add("--noise-scale", type=float, default=None, help="Generator noise (voice's own value if unset)")
    args.add("--noise-w-scale", type=float, default=None, help="Phoneme width noise (voice's own if unset)")
    args.add("--sentence-silence", type=float, default=0.0, help="Seconds of silence between sentences")
    args.add("--max-text-chars", type=int, default=10000, help="Longest text one request may send")
    args.add(
        "--max-queued-requests",
        type=int,
        default=8,
        help="Replies one connection may have queued or under way; one more gets a "
        "'too-many-requests' error and the connection is closed",
    )
    args.add(
        "--max-queue-wait",
        type=float,
        default=10.0,
        help="Refuse a new reply at once with an 'overloaded' error while its first audio would "
        "wait longer than this many seconds for a worker, so a client can try another instance "
        "(0: never refuse)",
    )
    args.add("--workers", type=int, default=default_workers(), help="Syntheses that may run at once")
    args.add("--threads-per-worker", type=int, default=1, help="onnxruntime threads per synthesis")
    args.add("--max-voices", type=int, default=3, help="Voices kept loaded at once (least recently used go)")
    args.add("--samples-per-chunk", type=int, default=1024, help="Samples per audio-chunk event")
    args.add(
        "--no-clause-split",
        action="store_true",
        help="Synthesize the first sentence whole instead of clause by clause (later first audio)",
    )
    args.add(
        "--download",
        action="store_true",
        help="Download a voice from the piper-voices hub when it is not installed (needs internet)",
    )
    return args


def settings_from_args(ns: argparse.Namespace) -> TtsSettings:
    data_dirs = tuple(Path(d).expanduser() for d in (ns.data_dir or [str(default_data_dir("tts"))]))
    if ns.workers < 1 or ns.threads_per_worker < 1 or ns.max_voices < 1:
        raise SystemExit("--workers, --threads-per-worker and --max-voices must be at least 1")
    if ns.max_text_chars < 1 or ns.samples_per_chunk < 1 or ns.max_queued_requests < 1:
        raise SystemExit("--max-text-chars, --max-queued-requests and --samples-per-chunk must be at least 1")
    if ns.max_queue_wait < 0:
        raise SystemExit("--max-queue-wait must be 0 or more seconds")
    if ns.sentence_silence < 0 or ns.sentence_silence > 10:
        raise SystemExit("--sentence-silence must be between 0 and 10 seconds")
    for flag in ("length_scale", "noise_scale", "noise_w_scale"):
        value = getattr(ns, flag)
        if value is not None and not 0 <= value <= 10:
            raise SystemExit(f"--{flag.replace('_', '-')} must be between 0 and 10")
    return TtsSettings(
        server=server_settings(ns),
        voice=ns.voice,
        data_dirs=data_dirs,
        speaker=ns.speaker,
        length_scale=ns.length_scale,
        noise_scale=ns.noise_scale,
        noise_w_scale=ns.noise_w_scale,
        sentence_silence=ns.sentence_silence,
        max_text_chars=ns.max_text_chars,
        max_queued_requests=ns.max_queued_requests,
        max_queue_wait=ns.max_queue_wait,
        workers=ns.workers,
        threads_per_worker=ns.threads_per_worker,
        max_voices=ns.max_voices,
        samples_per_chunk=ns.samples_per_chunk,
        clause_split=not ns.no_clause_split,
        download=ns.download,
        debug=ns.debug,
    )
