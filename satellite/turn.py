"""Standalone turns: mic -> STT (while the user speaks) -> handle (streamed sentences) ->
streaming TTS per sentence -> speaker, the reply playing while later sentences are generated."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from wyoming_core.audio import AudioFormat, AudioFormatError, check_format
from wyoming_core.client import (
    Partial,
    ProtocolViolation,
    Reply,
    ServiceTimeout,
    Transcription,
    VoiceError,
    converse_stream,
    synthesize,
    synthesize_stream,
    transcribe_stream,
)
from wyoming_core.logs import transcript_level

from .backend import Backend
from .services import Services, StageError
from .settings import MIC_FORMAT, TurnSettings
from .state import State

_LOGGER = logging.getLogger(__name__)

# The services are not trusted to end a reply: a transcript or an answer is text, and this is
# far more than any real one (a TTS reply is bounded by --max-playback-seconds instead).
_TEXT_REPLY_BYTES = 1024 * 1024
# The richest audio a TTS plausibly sends (48 kHz, 16 bit, stereo): with --max-playback-seconds,
# a bound on the bytes of one spoken reply whatever format it claims.
_TTS_BYTES_PER_SECOND = 48000 * 2 * 2


def _checked(rate: object, width: object, channels: object) -> AudioFormat:
    """The format of TTS audio, checked before anything is computed from it."""
    try:
        return check_format(rate, width, channels)
    except AudioFormatError as err:
        raise ProtocolViolation(f"unusable audio: {err}") from None


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
    def __init__(self, settings: TurnSettings, services: Services, name: str) -> None:
        self.settings = settings
        self.services = services
        # One conversation per satellite, across turns, so the handler keeps context.
        self.conversation_id = f"satellite-{name}-{uuid.uuid4().hex[:8]}"
        self._audio: asyncio.Queue[bytes | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._timing = Timing()

    async def start(self) -> None:
        await self.services.start()

    async def stop(self) -> None:
        await self._cancel()
        await self.services.stop()

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
            with contextlib.suppress(TimeoutError):  # the reply is bounded; the speaker may not be
                await self.sat.player.wait_done(timeout=self.sat.player.max_queued_seconds + 30)
            timing.log()
            await self._end(follow_up=reply.rstrip().endswith("?"))
        except StageError as err:
            _LOGGER.error("%s", err)
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
        stt_timeout = self.settings.stt_timeout
        # While the user speaks the VAD bounds the turn; once speech is over, the transcript must
        # come within --stt-timeout in all, however many partials the service sends meanwhile.
        deadline = asyncio.timeout(None)
        loop = asyncio.get_running_loop()

        async def chunks() -> AsyncIterator[bytes]:
            while (chunk := await audio.get()) is not None:
                yield chunk
            deadline.reschedule(loop.time() + stt_timeout)

        def request(uri: str) -> AsyncIterator[Partial | Transcription]:
            # A fresh reader of the queue per instance: one that could not be connected to took nothing.
            return transcribe_stream(
                uri,
                chunks(),
                MIC_FORMAT,
                language=self.settings.language,
                timeout=stt_timeout,
                max_bytes=_TEXT_REPLY_BYTES,
            )

        result: Transcription | None = None
        tried: list[str] = []
        try:
            async with deadline:
                async for item in self.services.stream("asr", request, tried):
                    if isinstance(item, Transcription):
                        result = item
        except TimeoutError:
            err = ServiceTimeout(f"no transcript within {stt_timeout:g} s of the end of speech")
            raise self.services.at_fault("asr", tried, err) from None
        timing.transcript = time.monotonic()
        text = result.text if result is not None else ""
        # What was said is private: at INFO only with --log-transcripts.
        _LOGGER.log(transcript_level(self.settings.log_transcripts), "Transcript: %r", text)
        return text

    async def _tts(
        self, uri: str, pieces: AsyncIterator[str]
    ) -> AsyncGenerator[tuple[bytes, AudioFormat], None]:
        """Streaming TTS when the service supports it; else one plain `synthesize` per sentence."""
        voice, language, timeout = self.settings.voice, self.settings.language, self.settings.tts_timeout
        max_bytes = int(self.sat.player.max_queued_seconds * _TTS_BYTES_PER_SECOND)
        if await self.services.tts_streams(uri):
            stream = synthesize_stream(
                uri, pieces, voice=voice, language=language, timeout=timeout, max_bytes=max_bytes
            )
            async with contextlib.aclosing(stream):  # closed at once when the reply is cut
                async for chunk in stream:
                    yield chunk.audio, _checked(chunk.rate, chunk.width, chunk.channels)
            return
        async for piece in pieces:
            speech = await synthesize(
                uri, piece, voice=voice, language=language, timeout=timeout, max_bytes=max_bytes
            )
            fmt = speech.format
            yield speech.audio, _checked(fmt.rate, fmt.width, fmt.channels)

    async def _answer(self, text: str, timing: Timing) -> str:
        """Handle and TTS run together: each sentence is spoken as soon as it arrives."""
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        reply_text: list[str] = []
        handled = asyncio.Event()  # the handle service's answer is complete

        handle_tried: list[str] = []
        tts_tried: list[str] = []

        def ask(uri: str) -> AsyncIterator[str | Reply]:
            return converse_stream(
                uri,
                text,
                self.conversation_id,
                language=self.settings.language,
                timeout=self.settings.handle_timeout,
                max_bytes=_TEXT_REPLY_BYTES,
            )

        async def handle() -> None:
            streamed = False
            try:
                async for item in self.services.stream("handle", ask, handle_tried):
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
            finally:
                sentences.put_nowait(None)
            handled.set()

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

            spoken, limit = 0.0, player.max_queued_seconds
            # A fresh `all_pieces()` per instance: one that could not be connected to took nothing.
            replies = self.services.stream("tts", lambda uri: self._tts(uri, all_pieces()), tts_tried)
            try:
                async with contextlib.aclosing(replies) as audio_stream:
                    async for audio, fmt in audio_stream:
                        timing.first_chunk = timing.first_chunk or time.monotonic()
                        # Counted before converting: a few bytes at a low rate can be hours.
                        spoken += len(audio) / fmt.bytes_per_second
                        if spoken > limit:
                            raise ProtocolViolation(
                                f"the reply is longer than {limit:g} s of audio (--max-playback-seconds)"
                            )
                        pcm = converter.convert(audio, fmt)
                        starts = player.enqueue(pcm, generation)
                        if starts is not None and not timing.first_audio:
                            timing.first_audio = starts
                            self.sat.sm.go(State.SPEAKING, "first reply audio")
            except VoiceError as err:  # the reply broke a bound (the pool's own failures are StageErrors)
                raise self.services.at_fault("tts", tts_tried, err) from None

        # A reply plays as it comes, so it cannot rightly take much longer than its audio: the
        # whole answer (handle and TTS) gets --handle-timeout plus --max-playback-seconds.
        overall = self.settings.handle_timeout + self.sat.player.max_queued_seconds
        try:
            async with asyncio.timeout(overall), asyncio.TaskGroup() as group:
                group.create_task(handle())
                group.create_task(speak())
        except ExceptionGroup as group:
            first = group.exceptions[0]
            if isinstance(first, StageError):
                raise first from None
            raise
        except TimeoutError:
            err = ServiceTimeout(f"the answer was not over within {overall:g} s")
            if handled.is_set():
                raise self.services.at_fault("tts", tts_tried, err) from None
            raise self.services.at_fault("handle", handle_tried, err) from None
        reply = " ".join(reply_text).strip()
        _LOGGER.log(transcript_level(self.settings.log_transcripts), "Reply: %r", reply)
        return reply
