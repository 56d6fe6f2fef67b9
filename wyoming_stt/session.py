"""One transcription request: audio in, partials out, the final decode started at end of speech."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from wyoming.asr import Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.event import Event

from wyoming_core.audio import STT_RATE, AudioFormat, StreamConverter, pcm16_to_float

from .endpoint import DetectorPool, Endpointer
from .engine import Decoded, Engines
from .settings import SttSettings

_LOGGER = logging.getLogger(__name__)

_BYTES_PER_SECOND = STT_RATE * 2
_SPEECH_PAD = 0.3  # seconds kept around the speech for the decoder
MAX_SECONDS = 120.0


class AudioTooLong(Exception):
    pass


@dataclass
class _FinalDecode:
    task: asyncio.Task[Decoded]
    started_at: float
    audio_end: int  # bytes of audio it covers


def _common_prefix(a: list[str], b: list[str]) -> list[str]:
    out = []
    for x, y in zip(a, b, strict=False):
        if x.lower().strip(".,!?") != y.lower().strip(".,!?"):
            break
        out.append(x)
    return out


def _retrieve(task: asyncio.Task[Decoded]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _LOGGER.debug("A speculative decode failed: %s", task.exception())


class TranscriptionSession:
    """State of one `transcribe` → audio → `audio-stop` exchange."""

    def __init__(
        self,
        engines: Engines,
        detectors: DetectorPool,
        settings: SttSettings,
        language: str | None,
        send: Callable[[Event], Awaitable[None]],
    ) -> None:
        self.engines = engines
        self.engine = engines.final
        self.settings = settings
        self.language = language
        self._send = send
        self._converter = StreamConverter()
        self._audio = bytearray()
        self._endpoint = Endpointer(settings.vad_threshold, settings.endpoint_silence, detectors)
        self._final: _FinalDecode | None = None
        self._partial: asyncio.Task[None] | None = None
        self._partial_at = 0  # audio bytes at the last partial
        # Seconds of new audio between partials: at least twice what the last one took, so
        # partials never occupy more than about half the CPU.
        self._partial_spacing = settings.partial_interval
        self._previous_words: list[str] = []
        self._emitted: list[str] = []
        self._stream_started = False
        self.finished = False
        # Language detection costs a full encoder pass; a partial's result is reused.
        self._detected: str | None = None
        self._early_task: asyncio.Task[None] | None = None

    # ---- audio in -------------------------------------------------------

    def add_audio(self, audio: bytes, fmt: AudioFormat) -> None:
        pcm = self._converter.convert(audio, fmt)
        if len(self._audio) + len(pcm) > MAX_SECONDS * _BYTES_PER_SECOND:
            raise AudioTooLong(f"Audio is longer than {MAX_SECONDS:g} s")
        self._audio.extend(pcm)
        if self.finished:
            return
        heard = self._endpoint.feed(pcm)
        if heard and self._final is not None:
            _LOGGER.debug("Speech resumed; the speculative final decode is discarded")
            self._final = None
        if self._endpoint.ended and self._final is None:
            self._start_final()
        elif self._wants_partial():
            self._partial_at = len(self._audio)
            self._partial = asyncio.create_task(self._run_partial())
        self._maybe_send_early()

    def _wants_partial(self) -> bool:
        return (
            self.settings.partials
            and self._endpoint.has_speech
            # Only mid-speech: a partial started in the trailing silence would compete
            # with the final decode for the CPU.
            and self._endpoint.in_speech
            and (self._partial is None or self._partial.done())
            and len(self._audio) - self._partial_at >= self._partial_spacing * _BYTES_PER_SECOND
        )

    def _language(self) -> str | None:
        return self.language or self._detected

    def _speech_audio(self) -> bytes:
        span = self._endpoint.speech_span(_SPEECH_PAD)
        if span is None:
            return b""
        start, end = span
        return bytes(self._audio[start:end])

    def _start_final(self) -> None:
        audio = self._speech_audio()
        task = asyncio.create_task(self.engine.transcribe(pcm16_to_float(audio), self._language()))
        self._final = _FinalDecode(task, time.monotonic(), len(self._audio))
        _LOGGER.debug(
            "End of speech detected; final decode started on %.2f s", len(audio) / _BYTES_PER_SECOND
        )
        task.add_done_callback(_retrieve)  # a discarded decode's error must not go unseen
        task.add_done_callback(lambda _t: self._maybe_send_early())

    def _maybe_send_early(self) -> None:
        """Server-side endpointing: send the transcript before audio-stop once the user
        has been silent for `early_silence` and the speculative decode is done."""
        final = self._final
        if (
            not self.settings.early_transcript
            or self.finished
            or final is None
            or not final.task.done()
            or final.task.cancelled()
            or final.task.exception() is not None  # audio-stop retries and reports
            or self._endpoint.silence_seconds < self.settings.early_silence
        ):
            return
        self.finished = True
        self._early_task = asyncio.create_task(self._send_early(final.task.result()))

    async def _send_early(self, decoded: Decoded) -> None:
        try:
            await self._finish(decoded, lead_ms=None)
        except (ConnectionError, RuntimeError):
            _LOGGER.debug("Client left before the early transcript could be sent")

    # ---- partials -------------------------------------------------------

    async def _run_partial(self) -> None:
        audio = self._speech_audio()
        engine = self.engines.for_partial(self._language())
        if not audio or engine is None:
            return
        started = time.monotonic()
        try:
            decoded = await engine.transcribe(pcm16_to_float(audio), self._language(), partial=True)
        except Exception as err:  # a failed partial must not end the request
            _LOGGER.debug("Partial decode failed: %s", err)
            return
        self._partial_spacing = max(self.settings.partial_interval, 2 * (time.monotonic() - started))
        if self.finished:
            return
        self._detected = self._detected or decoded.language
        words = decoded.text.split()
        # Emit only words two decodes agree on (or all but the last on the first decode),
        # so the concatenated chunks rarely need correcting.
        stable = _common_prefix(words, self._previous_words) if self._previous_words else words[:-1]
        self._previous_words = words
        if len(stable) > len(self._emitted) and _common_prefix(stable, self._emitted) == self._emitted:
            new = stable[len(self._emitted) :]
            await self._emit_chunk((" " if self._emitted else "") + " ".join(new))
            self._emitted = stable

    async def _emit_chunk(self, text: str) -> None:
        if not self._stream_started:
            self._stream_started = True
            await self._send(TranscriptStart(language=self.language).event())
        await self._send(TranscriptChunk(text=text).event())

    # ---- end ------------------------------------------------------------

    async def stop(self) -> None:
        """`audio-stop`: answer with the final transcript (unless it went out early)."""
        self._endpoint.release()  # no audio is fed to the VAD after audio-stop
        if self.finished:
            return
        self.finished = True
        stop_at = time.monotonic()
        if not self._endpoint.has_speech:
            _LOGGER.debug("No speech in %.2f s of audio", len(self._audio) / _BYTES_PER_SECOND)
            await self._finish(Decoded("", self.language), lead_ms=None)
            return
        final = self._final
        lead_ms: float | None = None
        if final is not None:
            lead_ms = (stop_at - final.started_at) * 1000
            decoded = await final.task
        else:
            decoded = await self.engine.transcribe(pcm16_to_float(self._speech_audio()), self._language())
        await self._finish(decoded, lead_ms)

    async def _finish(self, decoded: Decoded, lead_ms: float | None) -> None:
        text = decoded.text
        joined = " ".join(self._emitted)
        if text.startswith(joined) and len(text) > len(joined):
            await self._emit_chunk(text[len(joined) :] if joined else text)
        if not self._stream_started:
            self._stream_started = True
            await self._send(TranscriptStart(language=decoded.language).event())
        event = Transcript(text=text, language=decoded.language).event()
        # Extra field (ignored by other clients): how far ahead of audio-stop the decode began.
        event.data["endpointing"] = {
            "early_decode": lead_ms is not None,
            "lead_ms": round(lead_ms, 1) if lead_ms is not None else None,
        }
        await self._send(event)
        await self._send(TranscriptStop().event())
        _LOGGER.info(
            "Transcribed %.1f s of audio: %r%s",
            len(self._audio) / _BYTES_PER_SECOND,
            text,
            f" (decode began {lead_ms:.0f} ms before audio-stop)" if lead_ms else "",
        )

    def cancel(self) -> None:
        self._endpoint.release()
        for task in (self._partial, self._final.task if self._final else None, self._early_task):
            if task is not None and not task.done():
                task.cancel()
