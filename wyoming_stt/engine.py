"""faster-whisper model: loaded in the background, called only from the worker pool."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from wyoming_core.workers import WorkerPool

from .models import ResolvedModel
from .settings import SttSettings

if TYPE_CHECKING:
    from .home_names import HomeNames

_LOGGER = logging.getLogger(__name__)

# Segments that look like Whisper's silence hallucinations are dropped.
_NO_SPEECH_PROB = 0.6
_LOW_LOGPROB = -1.0


@dataclass(frozen=True)
class Decoded:
    text: str
    language: str | None


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
        pool: WorkerPool,
        role: str = "final",
        names: HomeNames | None = None,
    ) -> None:
        self.settings = settings
        self.role = role
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
        from faster_whisper import WhisperModel

        path = self.resolved.prepare()
        _LOGGER.info("Loading Whisper model %r from %s", self.resolved.name, path)
        return WhisperModel(
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

    def _decode(
        self,
        audio: np.ndarray,
        language: str | None,
        beam_size: int,
        partial: bool,
        stop: threading.Event | None,
    ) -> Decoded:
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
        texts = []
        for segment in segments:  # decoded lazily, one 30 s window at a time
            if stop is not None and stop.is_set():  # the client has gone: nobody reads the rest
                break
            if segment.no_speech_prob > _NO_SPEECH_PROB and segment.avg_logprob < _LOW_LOGPROB:
                _LOGGER.debug("Dropping likely hallucination: %r", segment.text)
                continue
            texts.append(segment.text.strip())
        return Decoded(" ".join(t for t in texts if t).strip(), info.language)

    async def transcribe(
        self,
        audio: np.ndarray,
        language: str | None,
        *,
        partial: bool = False,
        stop: threading.Event | None = None,
    ) -> Decoded:
        """`stop` set (the client has gone) ends a long decode after its current 30 s window."""
        await self.wait_ready()
        beam = 1 if partial else self.settings.beam_size
        started = time.monotonic()
        decoded = await self.pool.run(self._decode, audio, language, beam, partial, stop)
        _LOGGER.debug(
            "%s decode of %.2f s took %.0f ms",
            "Partial" if partial else "Final",
            len(audio) / 16000,
            (time.monotonic() - started) * 1000,
        )
        return decoded


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
