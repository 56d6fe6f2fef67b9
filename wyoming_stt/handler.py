"""Per-connection handler: routes Wyoming ASR events to a TranscriptionSession."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution, Info

from wyoming_core import PROJECT_ATTRIBUTION
from wyoming_core.audio import AudioFormatError, check_format, duration
from wyoming_core.errors import AUDIO_CHUNK_TOO_LONG as CHUNK_TOO_LONG
from wyoming_core.errors import AUDIO_TOO_LONG as TOO_LONG
from wyoming_core.errors import MODEL_UNAVAILABLE, OUT_OF_ORDER, OVERLOADED, UNSUPPORTED_LANGUAGE
from wyoming_core.errors import UNSUPPORTED_AUDIO_FORMAT as BAD_AUDIO
from wyoming_core.handler import INTERNAL_ERROR, ConnectionHandler, RequestError, Route
from wyoming_core.protocol import Limits
from wyoming_core.readiness import described
from wyoming_core.workers import Priority

from . import __version__
from .endpoint import AudioWorkers
from .engine import Engines, WhisperEngine
from .home_names import HomeNames
from .metrics import SttMetrics, TranscriptTimer
from .session import AudioTooLong, ChunkTooLong, TranscriptionSession
from .settings import SttSettings
from .turn import TurnService, TurnWatch

_LOGGER = logging.getLogger(__name__)


def build_info(
    settings: SttSettings,
    engine: WhisperEngine,
    names: HomeNames | None = None,
    turn: TurnService | None = None,
) -> Info:
    """Cheap, never waits for the model or Home Assistant; says how many of Home Assistant's
    names the final transcript listens for (once they are known)."""
    import faster_whisper

    description = "faster-whisper speech-to-text with streamed partials and endpointing"
    if names is not None and names.count:
        description += f"; listening for {names.count} names from Home Assistant"

    whisper = Attribution(
        name="OpenAI Whisper via SYSTRAN faster-whisper", url="https://github.com/SYSTRAN/faster-whisper"
    )
    return Info(
        asr=[
            AsrProgram(
                name="wyoming-stt",
                description=description,
                attribution=PROJECT_ATTRIBUTION,
                installed=True,
                version=__version__,
                models=[
                    AsrModel(
                        name=settings.model,
                        # Until the model is loaded, describe says so (wyoming_core.readiness).
                        description=described(
                            f"Whisper {settings.model} ({engine.resolved.source})",
                            loading=not engine.is_loaded and engine.error is None,
                            failed=engine.error is not None,
                        ),
                        attribution=whisper,
                        installed=True,
                        version=faster_whisper.__version__,
                        languages=engine.languages,
                    )
                ],
                supports_transcript_streaming=True,
                # The service tells the end of a turn itself: for every request with
                # --early-transcript, else for those that carry vad_sensitivity.
                requires_external_vad=not (settings.early_transcript or turn is not None),
            )
        ]
    )


def _request_start(context: object) -> float:
    """`context.request_starts_at`: seconds of the client's wake word audio before the request
    (our satellite sends it); anything else: 0."""
    value = context.get("request_starts_at") if isinstance(context, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 60.0:
        return float(value)
    return 0.0


def normalize_language(language: str | None, supported: list[str]) -> str | None:
    """'en-US' -> 'en'; None/'auto' -> None (detect). Raises for unsupported ones."""
    if language is None or language.strip().lower() in ("", "auto"):
        return None
    code = language.strip().replace("_", "-").split("-")[0].lower()
    if code not in supported:
        raise RequestError(
            UNSUPPORTED_LANGUAGE,
            f"Language {language!r} is not supported by this model; supported: {', '.join(supported)}",
            close=False,
        )
    return code


class SttHandler(ConnectionHandler):
    metrics: SttMetrics

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limits: Limits,
        settings: SttSettings,
        engines: Engines,
        audio: AudioWorkers,
        info: Callable[[], Info],
        metrics: SttMetrics,
        turn: TurnService | None = None,
    ) -> None:
        self.settings = settings
        self.turn = turn
        # The request's vad_sensitivity: set, the service ends the turn (early transcript).
        self._sensitivity: str | None = None
        self._request_start = 0.0
        self.metrics = metrics
        self.engines = engines
        self.engine = engines.final
        self.audio = audio
        self._info = info
        self._language = settings.language
        self._session: TranscriptionSession | None = None
        # The session whose transcript is being finished after audio-stop, in the background:
        # the read loop goes on reading, which is how a client that leaves is noticed.
        self._finishing: tuple[TranscriptionSession, asyncio.Task[None]] | None = None
        super().__init__(reader, writer, limits)

    def info(self) -> Info:
        return self._info()

    def load(self) -> dict[str, Any]:
        """The decode queue: workers, decodes running and queued, the expected wait of a new
        final decode in seconds, decodes completed and partials shed since the start; and the
        audio streams being listened to now (each will want a final decode soon)."""
        return {**self.engine.pool.snapshot(), "streams": self.audio.detectors.in_use}

    def busy(self) -> bool:
        # A transcript still being decoded keeps the idle timeout away.
        return super().busy() or (self._finishing is not None and not self._finishing[1].done())

    def routes(self) -> Mapping[str, Route]:
        return {
            "transcribe": self._on_transcribe,
            "audio-start": self._on_audio_start,
            "audio-chunk": self._on_audio_chunk,
            "audio-stop": self._on_audio_stop,
        }

    async def _after_finishing(self) -> None:
        """A client that sends its next request at once gets the previous transcript first."""
        if self._finishing is not None:
            await asyncio.wait({self._finishing[1]})
            self._finishing = None

    async def _on_transcribe(self, event: Event) -> bool:
        await self._after_finishing()
        request = Transcribe.from_event(event)
        self._language = normalize_language(request.language, self.engine.languages) or self.settings.language
        wanted = request.vad_sensitivity
        self._sensitivity = None if wanted is None else str(getattr(wanted, "value", wanted))
        self._request_start = _request_start(request.context)
        return True

    async def _on_audio_start(self, event: Event) -> bool:
        data = event.data
        try:
            check_format(data.get("rate"), data.get("width"), data.get("channels"))
        except AudioFormatError as err:
            raise RequestError(BAD_AUDIO, str(err)) from None
        if self.engine.error:
            raise RequestError(MODEL_UNAVAILABLE, self.engine.error)
        self._admit()
        await self._after_finishing()
        if self._session is not None:
            self._session.cancel()
        self._session = TranscriptionSession(
            self.engines, self.audio, self.settings, self._language, self.write_event, self._turn_watch()
        )
        return True

    def _turn_watch(self) -> TurnWatch | None:
        """The service ends this turn itself when asked (vad_sensitivity) or always (--early-transcript)."""
        if self.turn is None or (self._sensitivity is None and not self.settings.early_transcript):
            return None
        return self.turn.watch(self._sensitivity, self._request_start)

    def _admit(self) -> None:
        """Refuse a new request at once while the decode queue is too long: the client (or its
        pool) can try another instance instead of waiting without bound."""
        limit = self.settings.max_queue_wait
        if not limit:
            return
        # Speculative decodes count: they become final ones a moment later.
        wait = self.engine.pool.expected_wait(Priority.LIKELY)
        if wait > limit:
            raise RequestError(
                OVERLOADED,
                f"The service is overloaded: a transcript would wait about {wait:.1f} s for a free "
                f"worker (limit: --max-queue-wait {limit:g} s); try another instance or again later",
            )

    async def _on_audio_chunk(self, event: Event) -> bool:
        if self._session is None:
            raise RequestError(OUT_OF_ORDER, "audio-chunk received before audio-start")
        data = event.data
        try:
            fmt = check_format(data.get("rate"), data.get("width"), data.get("channels"))
        except AudioFormatError as err:
            raise RequestError(BAD_AUDIO, str(err)) from None
        try:
            # Awaited: the next chunk is read only once this one is converted (back-pressure).
            await self._session.add_audio(AudioChunk.from_event(event).audio, fmt)
        except AudioTooLong as err:
            raise RequestError(TOO_LONG, str(err)) from None
        except ChunkTooLong as err:
            raise RequestError(CHUNK_TOO_LONG, str(err)) from None
        self.metrics.heard(duration(event.payload or b"", fmt))
        return True

    async def _on_audio_stop(self, event: Event) -> bool:
        await self._after_finishing()
        if self._session is None:
            # No audio at all: an empty transcript, as if nothing was said.
            self._session = TranscriptionSession(
                self.engines, self.audio, self.settings, self._language, self.write_event
            )
        session, self._session = self._session, None
        self._finishing = (session, asyncio.create_task(self._finish(session, self.metrics.transcription())))
        self._language = self.settings.language
        self._sensitivity = None
        self._request_start = 0.0
        return True

    async def _finish(self, session: TranscriptionSession, timer: TranscriptTimer) -> None:
        try:
            await session.stop()
            timer.done()
        except RuntimeError as err:
            _LOGGER.warning("Could not transcribe for %s: %s", self.peer, err)
            await self.send_error(MODEL_UNAVAILABLE, str(err))
            self.writer.close()
        except ConnectionError:
            _LOGGER.debug("Client %s left before its transcript was sent", self.peer)
        except Exception:
            _LOGGER.exception("Unexpected error while transcribing for %s", self.peer)
            await self.send_error(INTERNAL_ERROR, "Internal error in the service; see its log")
            self.writer.close()

    async def disconnect(self) -> None:
        # The client is gone: its decodes stop (a decode under way after its 30 s window).
        for session in (self._session, self._finishing[0] if self._finishing else None):
            if session is not None:
                session.cancel()
        if self._finishing is not None:
            self._finishing[1].cancel()
        self._session = self._finishing = None


__all__ = ["AudioStart", "AudioStop", "SttHandler", "build_info"]
