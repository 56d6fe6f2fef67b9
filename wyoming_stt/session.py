"""One transcription request: audio in, partials out, the final decode started at end of speech.

Each chunk's length is checked before anything is done with it; conversion to 16 kHz and the
VAD then run in a worker thread, one chunk at a time per session (their state is the session's
own), while the event loop goes on serving other clients.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass

from wyoming.asr import Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.event import Event

from wyoming_core.audio import STT_RATE, AudioFormat, StreamConverter, duration, pcm16_to_float
from wyoming_core.logs import clip, transcript_level
from wyoming_core.workers import Priority, Shed, Ticket

from .endpoint import FRAME_SECONDS, AudioWorkers, Endpointer
from .engine import Decoded, Engines
from .settings import SttSettings
from .turn import TurnWatch

_LOGGER = logging.getLogger(__name__)

_BYTES_PER_SECOND = STT_RATE * 2
_SPEECH_PAD = 0.3  # seconds kept around the speech for the decoder
MAX_SECONDS = 120.0
# One chunk: streaming clients send 20-100 ms; a whole short clip in one chunk still fits.
MAX_CHUNK_SECONDS = 30.0


class AudioTooLong(Exception):
    pass


class ChunkTooLong(Exception):
    pass


@dataclass
class _FinalDecode:
    task: asyncio.Task[Decoded]
    started_at: float
    audio_end: int  # bytes of audio it covers
    stop: threading.Event
    # Queued as likely needed; raised to urgent when the client waits for it (audio-stop).
    ticket: Ticket

    def discard(self) -> None:
        """Nobody will use it: the decoding thread stops after its window under way."""
        self.stop.set()
        self.task.cancel()


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
        workers: AudioWorkers,
        settings: SttSettings,
        language: str | None,
        send: Callable[[Event], Awaitable[None]],
        turn: TurnWatch | None = None,
    ) -> None:
        self.engines = engines
        self.engine = engines.final
        self.settings = settings
        self.language = language
        self._send = send
        self._converter = StreamConverter()
        self._audio = bytearray()
        self._received = 0.0  # seconds of audio accepted, counted before conversion
        self._workers = workers
        # The chunk a worker thread is converting (and feeding to the VAD) right now.
        self._in_flight: Future[tuple[bytes, bool]] | None = None
        # Set when the client has gone: a decode under way stops at its next segment.
        self._stop = threading.Event()
        self._endpoint = Endpointer(settings.vad_threshold, settings.endpoint_silence, workers.detectors)
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
        # Set: the service ends this turn (early transcript) when the user has finished.
        self._turn = turn
        if turn is not None:
            turn.on_change = self._maybe_send_early

    # ---- audio in -------------------------------------------------------

    async def add_audio(self, audio: bytes, fmt: AudioFormat) -> None:
        # Checked on the client's own format, before converting: 4 MiB at 1000 Hz / 8 bit
        # would become 128 MiB at 16 kHz.
        seconds = duration(audio, fmt)
        if seconds > MAX_CHUNK_SECONDS:
            raise ChunkTooLong(
                f"One audio chunk of {seconds:.1f} s is over the limit of {MAX_CHUNK_SECONDS:g} s; "
                "send the audio in shorter chunks"
            )
        if self._received + seconds > MAX_SECONDS:
            raise AudioTooLong(f"Audio is longer than {MAX_SECONDS:g} s")
        self._received += seconds
        work = self._workers.pool.submit(self._front_end, audio, fmt, not self.finished)
        self._in_flight = work
        pcm, heard = await asyncio.wrap_future(work)
        self._in_flight = None
        self._audio.extend(pcm)
        if self.finished:
            return
        if heard and self._final is not None:
            _LOGGER.debug("Speech resumed; the speculative final decode is discarded")
            # Stopped, not left running: 100 s of speech with pauses started one per pause.
            self._final.discard()
            self._final = None
        if self._endpoint.ended and self._final is None:
            self._start_final()
        elif self._wants_partial():
            self._partial_at = len(self._audio)
            self._partial = asyncio.create_task(self._run_partial())
        if self._turn is not None and self._endpoint.has_speech:
            self._turn.on_audio(heard, self._endpoint.silence_seconds, self._recent_audio)
        self._maybe_send_early()

    def _speech_end(self) -> float:
        """Seconds into the audio where the speech so far ends."""
        last = self._endpoint.last_speech
        return (last + 1) * FRAME_SECONDS if last is not None else 0.0

    def _recent_audio(self) -> bytes:
        """What the turn detector hears: the last 8 s, the silence since the speech included."""
        return bytes(self._audio[-8 * _BYTES_PER_SECOND :])

    def _front_end(self, audio: bytes, fmt: AudioFormat, feed_vad: bool) -> tuple[bytes, bool]:
        """Worker thread: 16 kHz mono PCM, and whether the VAD heard new speech in it."""
        pcm = self._converter.convert(audio, fmt)
        return pcm, self._endpoint.feed(pcm) if feed_vad else False

    def _wants_partial(self) -> bool:
        return (
            self.settings.partials
            and self._endpoint.has_speech
            # Only mid-speech: a partial started in the trailing silence would compete
            # with the final decode for the CPU.
            and self._endpoint.in_speech
            and (self._partial is None or self._partial.done())
            and len(self._audio) - self._partial_at >= self._partial_spacing * _BYTES_PER_SECOND
            and not self._shed_partial()
        )

    def _shed_partial(self) -> bool:
        """Partials are shed first when the machine is busy: a final transcript must not wait."""
        if not self.engine.pool.busy(self.settings.shed_wait):
            return False
        self.engine.pool.note_shed()
        self._partial_at = len(self._audio)  # asked again after another spacing of audio
        return True

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
        stop = threading.Event()
        # Speculative until audio-stop: final decodes that clients already wait for go first.
        ticket = Ticket(Priority.LIKELY, "final")
        task = asyncio.create_task(
            self.engine.transcribe(pcm16_to_float(audio), self._language(), stop=stop, ticket=ticket)
        )
        self._final = _FinalDecode(task, time.monotonic(), len(self._audio), stop, ticket)
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
            self._turn is None
            or self.finished
            or final is None
            or not final.task.done()
            or final.task.cancelled()
            or final.task.exception() is not None  # audio-stop retries and reports
            or not self._turn.ended(
                self._endpoint.silence_seconds,
                final.task.result().text,
                self._language(),
                final.task.result().confidence,
                self._speech_end(),
            )
        ):
            return
        self.finished = True
        _LOGGER.debug(
            "Turn over (%s) after %.2f s of silence", self._turn.reason, self._endpoint.silence_seconds
        )
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
            decoded = await engine.transcribe(
                pcm16_to_float(audio),
                self._language(),
                partial=True,
                stop=self._stop,
                # Stale by the time the next one is due: dropped rather than run late.
                max_wait=self.settings.partial_interval,
            )
        except Shed:
            _LOGGER.debug("Partial decode shed: the service is busy")
            return
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
            final.ticket.raise_to(Priority.URGENT)  # the client waits for it now
            decoded = await final.task
        else:
            decoded = await self.engine.transcribe(
                pcm16_to_float(self._speech_audio()), self._language(), stop=self._stop
            )
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
            # Sent before audio-stop: the service ended the turn ("turn-detector": the user
            # sounded and read finished; "silence": the longest pause passed).
            "ended_by": self._turn.reason if self._turn is not None and self._turn.reason else None,
        }
        await self._send(event)
        await self._send(TranscriptStop().event())
        _LOGGER.info(
            "Transcribed %.1f s of audio%s",
            len(self._audio) / _BYTES_PER_SECOND,
            f" (decode began {lead_ms:.0f} ms before audio-stop)" if lead_ms else "",
        )
        # What was said is private: at INFO only with --log-transcripts.
        _LOGGER.log(transcript_level(self.settings.log_transcripts), "Transcript: '%s'", clip(text, 1000))

    def cancel(self) -> None:
        self._stop.set()
        work = self._in_flight
        if work is not None and not work.done():
            # A worker thread still feeds this session's detector: it goes back to the pool
            # only when the thread is done with it.
            work.cancel()
            work.add_done_callback(lambda _work: self._endpoint.release())
        else:
            self._endpoint.release()
        if self._final is not None:
            self._final.discard()
        for task in (self._partial, self._early_task):
            if task is not None and not task.done():
                task.cancel()
        if self._turn is not None:
            self._turn.close()
