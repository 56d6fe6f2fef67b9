"""Standalone turns: mic -> STT (while the user speaks) -> handle (streamed sentences) ->
streaming TTS per sentence -> speaker, the reply playing while later sentences are generated."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from wyoming_core.audio import AudioFormat
from wyoming_core.client import (
    Reply,
    Transcription,
    VoiceError,
    converse_stream,
    synthesize,
    synthesize_stream,
    transcribe_stream,
)
from wyoming_core.logs import transcript_level

from .backend import Backend
from .services import LABELS, ServiceDirectory
from .settings import MIC_FORMAT, TurnSettings
from .state import State

_LOGGER = logging.getLogger(__name__)


class StageError(Exception):
    """A turn stage failed; names the service."""

    def __init__(self, kind: str, err: BaseException) -> None:
        super().__init__(f"{LABELS[kind]}: {err}")
        self.kind = kind
        self.err = err


@dataclass
class Timing:
    end_of_speech: float = 0.0
    transcript: float = 0.0
    first_sentence: float = 0.0
    first_chunk: float = 0.0  # first TTS audio chunk received
    first_audio: float = 0.0  # ... and when it starts to sound

    def log(self) -> None:
        if not (self.end_of_speech and self.transcript and self.first_sentence and self.first_audio):
            return
        model = self.first_sentence - self.transcript
        total = self.first_audio - self.end_of_speech
        # The benchmark parses this line.
        _LOGGER.info(
            "turn-timing eos_to_transcript=%.3f model_first_sentence=%.3f tts_first_chunk=%.3f "
            "chunk_to_sound=%.3f sentence_to_audio=%.3f eos_to_audio=%.3f eos_to_audio_excl_model=%.3f "
            "eos_at=%.3f first_audio_at=%.3f",
            self.transcript - self.end_of_speech,
            model,
            self.first_chunk - self.first_sentence,
            self.first_audio - self.first_chunk,
            self.first_audio - self.first_sentence,
            total,
            total - model,
            self.end_of_speech,
            self.first_audio,
        )


class StandaloneBackend(Backend):
    def __init__(self, settings: TurnSettings, services: ServiceDirectory, name: str) -> None:
        self.settings = settings
        self.services = services
        # One conversation per satellite, across turns, so the handler keeps context.
        self.conversation_id = f"satellite-{name}-{uuid.uuid4().hex[:8]}"
        self._audio: asyncio.Queue[bytes | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._timing = Timing()
        self._discovery: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Browse at start-up, not at the first wake, so the first turn does not wait for it.
        self._discovery = asyncio.create_task(self.services.discover(), name="discover")

    async def stop(self) -> None:
        await self._cancel()
        if self._discovery is not None:
            self._discovery.cancel()
        await self.services.close()

    async def begin_turn(self, wake_word: str | None, preroll: bytes) -> None:
        await self._cancel()
        self._audio = asyncio.Queue()
        if preroll:
            self._audio.put_nowait(preroll)
        self._timing = Timing()
        self._task = asyncio.create_task(self._turn(self._audio, self._timing), name="turn")

    async def audio(self, chunk: bytes) -> None:
        if self._audio is not None:
            self._audio.put_nowait(chunk)

    async def end_of_speech(self) -> None:
        self._timing.end_of_speech = self.sat.end_of_speech_at
        if self._audio is not None:
            self._audio.put_nowait(None)
            self._audio = None

    async def abandon_turn(self, reason: str) -> None:
        await self._cancel()

    async def barge_in(self) -> None:
        # Cancelling closes the STT/handle/TTS connections; the services stop work on disconnect.
        await self._cancel()

    async def _cancel(self) -> None:
        self._audio = None
        task, self._task = self._task, None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the turn ---------------------------------------------------------------------------

    async def _turn(self, audio: asyncio.Queue[bytes | None], timing: Timing) -> None:
        try:
            text = await self._transcribe(audio, timing)
            if not text.strip():
                _LOGGER.info("Heard nothing to answer")
                await self._end(follow_up=False)
                return
            reply = await self._answer(text, timing)
            await self.sat.player.wait_done(timeout=300)
            timing.log()
            await self._end(follow_up=reply.rstrip().endswith("?"))
        except StageError as err:
            self.services.failed(err.kind, err.err)
            await self._end(error=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            _LOGGER.exception("Turn failed")
            await self._end(error=True)

    async def _end(self, *, error: bool = False, follow_up: bool = False) -> None:
        self._task = None  # this task is ending: nothing to cancel
        await self.sat.end_turn(error=error, follow_up=follow_up)

    async def _transcribe(self, audio: asyncio.Queue[bytes | None], timing: Timing) -> str:
        async def chunks() -> AsyncIterator[bytes]:
            while (chunk := await audio.get()) is not None:
                yield chunk

        uri = await self._uri("asr")
        result: Transcription | None = None
        try:
            async for item in transcribe_stream(
                uri, chunks(), MIC_FORMAT, language=self.settings.language, timeout=self.settings.stt_timeout
            ):
                if isinstance(item, Transcription):
                    result = item
        except VoiceError as err:
            raise StageError("asr", err) from err
        self.services.ok("asr")
        timing.transcript = time.monotonic()
        text = result.text if result is not None else ""
        # What was said is private: at INFO only with --log-transcripts.
        _LOGGER.log(transcript_level(self.settings.log_transcripts), "Transcript: %r", text)
        return text

    async def _uri(self, kind: str) -> str:
        try:
            return await self.services.uri(kind)
        except VoiceError as err:
            raise StageError(kind, err) from err

    async def _tts(self, uri: str, pieces: AsyncIterator[str]) -> AsyncIterator[tuple[bytes, AudioFormat]]:
        """Streaming TTS when the service supports it; else one plain `synthesize` per sentence."""
        voice, language, timeout = self.settings.voice, self.settings.language, self.settings.tts_timeout
        if await self.services.tts_streams(uri):
            async for chunk in synthesize_stream(
                uri, pieces, voice=voice, language=language, timeout=timeout
            ):
                yield chunk.audio, AudioFormat(chunk.rate, chunk.width, chunk.channels)
            return
        async for piece in pieces:
            speech = await synthesize(uri, piece, voice=voice, language=language, timeout=timeout)
            yield speech.audio, speech.format

    async def _answer(self, text: str, timing: Timing) -> str:
        """Handle and TTS run together: each sentence is spoken as soon as it arrives."""
        handle_uri = await self._uri("handle")
        tts_uri = await self._uri("tts")
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        reply_text: list[str] = []

        async def handle() -> None:
            streamed = False
            try:
                async for item in converse_stream(
                    handle_uri,
                    text,
                    self.conversation_id,
                    language=self.settings.language,
                    timeout=self.settings.handle_timeout,
                ):
                    if isinstance(item, Reply):
                        reply_text.append(item.text)
                        if not streamed and item.text.strip():
                            timing.first_sentence = timing.first_sentence or time.monotonic()
                            sentences.put_nowait(item.text)
                    elif item.strip():
                        streamed = True
                        timing.first_sentence = timing.first_sentence or time.monotonic()
                        _LOGGER.debug("Sentence: %r", item)
                        # A streaming TTS only sees a sentence end once whitespace follows the
                        # full stop; each chunk is a whole sentence, so say so at once instead
                        # of leaving TTS waiting for the next one.
                        sentences.put_nowait(item if item[-1:].isspace() else item + " ")
            except VoiceError as err:
                raise StageError("handle", err) from err
            finally:
                sentences.put_nowait(None)
            self.services.ok("handle")

        async def pieces() -> AsyncIterator[str]:
            while (piece := await sentences.get()) is not None:
                yield piece

        async def speak() -> None:
            player = self.sat.player
            generation = player.generation
            converter = player.converter()
            # Wait for the first sentence before opening TTS: nothing to say, no request.
            first = await sentences.get()
            if first is None:
                return

            async def all_pieces() -> AsyncIterator[str]:
                yield first
                async for piece in pieces():
                    yield piece

            try:
                async for audio, fmt in self._tts(tts_uri, all_pieces()):
                    timing.first_chunk = timing.first_chunk or time.monotonic()
                    pcm = converter.convert(audio, fmt)
                    starts = player.enqueue(pcm, generation)
                    if starts is not None and not timing.first_audio:
                        timing.first_audio = starts
                        self.sat.sm.go(State.SPEAKING, "first reply audio")
            except VoiceError as err:
                raise StageError("tts", err) from err
            self.services.ok("tts")

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(handle())
                group.create_task(speak())
        except ExceptionGroup as group:
            first = group.exceptions[0]
            if isinstance(first, StageError):
                raise first from None
            raise
        reply = " ".join(reply_text).strip()
        _LOGGER.log(transcript_level(self.settings.log_transcripts), "Reply: %r", reply)
        return reply
