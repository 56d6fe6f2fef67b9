"""Per-connection handler: routes Wyoming ASR events to a TranscriptionSession."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution, Info

from wyoming_core import PROJECT_ATTRIBUTION
from wyoming_core.audio import AudioFormatError, check_format
from wyoming_core.handler import ConnectionHandler, RequestError, Route
from wyoming_core.protocol import Limits

from . import __version__
from .endpoint import AudioWorkers
from .engine import Engines, WhisperEngine
from .home_names import HomeNames
from .session import AudioTooLong, ChunkTooLong, TranscriptionSession
from .settings import SttSettings

_LOGGER = logging.getLogger(__name__)

UNSUPPORTED_LANGUAGE = "unsupported-language"
BAD_AUDIO = "unsupported-audio-format"
OUT_OF_ORDER = "out-of-order"
MODEL_UNAVAILABLE = "model-unavailable"
TOO_LONG = "audio-too-long"
CHUNK_TOO_LONG = "audio-chunk-too-long"


def build_info(settings: SttSettings, engine: WhisperEngine, names: HomeNames | None = None) -> Info:
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
                        description=f"Whisper {settings.model} ({engine.resolved.source})",
                        attribution=whisper,
                        installed=True,
                        version=faster_whisper.__version__,
                        languages=engine.languages,
                    )
                ],
                supports_transcript_streaming=True,
            )
        ]
    )


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
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limits: Limits,
        settings: SttSettings,
        engines: Engines,
        audio: AudioWorkers,
        info: Callable[[], Info],
    ) -> None:
        self.settings = settings
        self.engines = engines
        self.engine = engines.final
        self.audio = audio
        self._info = info
        self._language = settings.language
        self._session: TranscriptionSession | None = None
        super().__init__(reader, writer, limits)

    def info(self) -> Info:
        return self._info()

    def routes(self) -> Mapping[str, Route]:
        return {
            "transcribe": self._on_transcribe,
            "audio-start": self._on_audio_start,
            "audio-chunk": self._on_audio_chunk,
            "audio-stop": self._on_audio_stop,
        }

    async def _on_transcribe(self, event: Event) -> bool:
        request = Transcribe.from_event(event)
        self._language = normalize_language(request.language, self.engine.languages) or self.settings.language
        return True

    async def _on_audio_start(self, event: Event) -> bool:
        data = event.data
        try:
            check_format(data.get("rate"), data.get("width"), data.get("channels"))
        except AudioFormatError as err:
            raise RequestError(BAD_AUDIO, str(err)) from None
        if self.engine.error:
            raise RequestError(MODEL_UNAVAILABLE, self.engine.error)
        if self._session is not None:
            self._session.cancel()
        self._session = TranscriptionSession(
            self.engines, self.audio, self.settings, self._language, self.write_event
        )
        return True

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
        return True

    async def _on_audio_stop(self, event: Event) -> bool:
        if self._session is None:
            # No audio at all: an empty transcript, as if nothing was said.
            self._session = TranscriptionSession(
                self.engines, self.audio, self.settings, self._language, self.write_event
            )
        session, self._session = self._session, None
        try:
            await session.stop()
        except RuntimeError as err:
            raise RequestError(MODEL_UNAVAILABLE, str(err)) from None
        self._language = self.settings.language
        return True

    async def disconnect(self) -> None:
        if self._session is not None:
            self._session.cancel()
            self._session = None


__all__ = ["AudioStart", "AudioStop", "SttHandler", "build_info"]
