"""faster-whisper model: loaded in the background, called only from the worker pool."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from wyoming_core.metrics import timed
from wyoming_core.workers import Priority, PriorityPool, Ticket

from .metrics import SttMetrics
from .models import ResolvedModel
from .settings import SttSettings
from .window import FULL_FRAMES, load_model, window_frames

if TYPE_CHECKING:
    from .home_names import HomeNames

_LOGGER = logging.getLogger(__name__)

# Segments that look like Whisper's silence hallucinations are dropped.
_NO_SPEECH_PROB = 0.6
_LOW_LOGPROB = -1.0
# Whisper decodes 30 s windows; audio up to this long is decoded in one step.
_WINDOW_SAMPLES = 30 * 16000


@dataclass(frozen=True)
class Decoded:
    text: str
    language: str | None
    # The lowest average token log-probability of its segments (0: sure, or nothing decoded):
    # a misheard word reads as a sentence too, but the model was unsure of it.
    confidence: float = 0.0


@dataclass
class _Progress:
    """A decode taken in steps: what is decoded so far and the lazy segments still to come."""

    segments: Iterator[Any] | None = None
    language: str | None = None
    texts: list[str] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    done: bool = False


def model_languages(name: str, location: str) -> list[str]:
    """Languages the model supports, known without loading it (describe must be instant)."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    if name.endswith(".en") or location.rstrip("/").endswith(".en"):
        return ["en"]
    return sorted(_LANGUAGE_CODES)


class WhisperEngine:
    """Owns the model. `ready` resolves when loaded; `error` says why it did not."""

    def __init__(
        self,
        settings: SttSettings,
        resolved: ResolvedModel,
        pool: PriorityPool,
        role: str = "final",
        names: HomeNames | None = None,
        metrics: SttMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.role = role
        self.metrics = metrics
        # Home Assistant's names for final decodes (partials stay unbiased: cheaper).
        self.names = names
        self.resolved = resolved
        self.pool = pool
        self.languages = model_languages(resolved.name, resolved.location)
        self._model: Any = None
        self._loaded = asyncio.Event()
        self.error: str | None = None

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    def _load(self) -> Any:
        path = self.resolved.prepare()
        _LOGGER.info("Loading Whisper model %r from %s", self.resolved.name, path)
        return load_model(
            path,
            device="cpu",
            compute_type=self.settings.compute_type,
            cpu_threads=self.settings.cpu_threads,
            num_workers=self.settings.workers,
            local_files_only=True,
        )

    async def load(self) -> None:
        try:
            # A dedicated thread: loading must not occupy a decode worker slot.
            self._model = await asyncio.to_thread(self._load)
            if self.role == "final":
                _LOGGER.info("Whisper model %r is ready", self.resolved.name)
            else:
                _LOGGER.info("Whisper model %r loaded for partial transcripts", self.resolved.name)
        except Exception as err:
            self.error = f"Could not load Whisper model {self.resolved.name!r}: {err}"
            _LOGGER.error("%s", self.error)
        finally:
            self._loaded.set()

    async def wait_ready(self) -> None:
        await self._loaded.wait()
        if self._model is None:
            raise RuntimeError(self.error or "model not loaded")

    def _step(
        self,
        progress: _Progress,
        audio: np.ndarray,
        language: str | None,
        beam_size: int,
        partial: bool,
        stop: threading.Event | None,
    ) -> None:
        """Worker thread: the next 30 s window (all of it for audio up to 30 s)."""
        frames = window_frames(len(audio))
        short = not self.settings.full_window and frames < FULL_FRAMES
        with self._model.window(frames if short else None):
            self._step_window(progress, audio, language, beam_size, partial, stop)

    def _step_window(
        self,
        progress: _Progress,
        audio: np.ndarray,
        language: str | None,
        beam_size: int,
        partial: bool,
        stop: threading.Event | None,
    ) -> None:
        if progress.segments is None:
            segments, info = self._model.transcribe(
                audio,
                language=language,
                beam_size=beam_size,
                initial_prompt=self.settings.initial_prompt,
                # Put before the initial prompt in every 30 s window. Measured as good as the
                # same names in the initial prompt (bench/stt_names.py); --initial-prompt stays.
                hotwords=None if partial or self.names is None else self.names.hotwords,
                condition_on_previous_text=False,
                without_timestamps=True,
                vad_filter=False,  # our own VAD already cut the audio to speech
                temperature=0.0 if partial else [0.0, 0.2, 0.4],
            )
            progress.segments, progress.language = segments, info.language
        whole = len(audio) <= _WINDOW_SAMPLES
        for segment in progress.segments:  # decoded lazily, one 30 s window at a time
            if stop is not None and stop.is_set():  # the client has gone: nobody reads the rest
                break
            if segment.no_speech_prob > _NO_SPEECH_PROB and segment.avg_logprob < _LOW_LOGPROB:
                _LOGGER.debug("Dropping likely hallucination: %r", segment.text)
            else:
                progress.texts.append(segment.text.strip())
                progress.logprobs.append(float(segment.avg_logprob))
            if not whole:
                return  # back to the queue: a long decode takes turns with the others
        progress.done = True

    async def transcribe(
        self,
        audio: np.ndarray,
        language: str | None,
        *,
        partial: bool = False,
        stop: threading.Event | None = None,
        ticket: Ticket | None = None,
        max_wait: float | None = None,
    ) -> Decoded:
        """`stop` set (the client has gone) ends a long decode after its current 30 s window.

        Queued in the worker pool by `ticket` (default: urgent for a final decode, optional
        for a partial); a partial not started within `max_wait` seconds raises `Shed`."""
        await self.wait_ready()
        if ticket is None:
            ticket = Ticket(Priority.OPTIONAL, "partial") if partial else Ticket(Priority.URGENT, "final")
        beam = 1 if partial else self.settings.beam_size
        started = time.monotonic()
        progress = _Progress()
        gone = stop if stop is not None else threading.Event()
        step = timed(self._step)  # also says how long the model worked, in the worker thread
        busy = 0.0
        # A client that left stops a long decode between windows (and within one, in _step).
        while not progress.done and not (progress.segments is not None and gone.is_set()):
            _, took = await self.pool.run(
                step, progress, audio, language, beam, partial, stop, ticket=ticket, max_wait=max_wait
            )
            busy += took
            max_wait = None  # only its start can be shed: once begun, a decode is finished
        _LOGGER.debug(
            "%s decode of %.2f s took %.0f ms",
            "Partial" if partial else "Final",
            len(audio) / 16000,
            (time.monotonic() - started) * 1000,
        )
        if self.metrics is not None and progress.done:
            self.metrics.decoded(partial, len(audio) / 16000, busy)
        text = " ".join(t for t in progress.texts if t).strip()
        return Decoded(text, progress.language, min(progress.logprobs, default=0.0))


@dataclass(frozen=True)
class Engines:
    """The models a session decodes with.

    Partial transcripts cost a full encoder pass each; on a 2-core machine a partial still
    running when speech ends slows the final decode. A small model for partials (tiny.en
    for English) keeps that cost low, while the final transcript comes from the main model.
    """

    final: WhisperEngine
    partial: WhisperEngine | None = None

    def for_partial(self, language: str | None) -> WhisperEngine | None:
        """The engine for a partial decode now, or None to skip it (nothing loaded yet)."""
        small = self.partial
        if small is not None and language is not None and language in small.languages:
            return small if small.is_loaded else None
        return self.final if self.final.is_loaded else None
