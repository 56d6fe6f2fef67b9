"""One standalone answer: the handle service's sentences, each spoken by TTS as it arrives.

The handle request and the TTS request run side by side: a queue of sentences between them,
so the reply plays while later sentences are still being generated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator

from wyoming_core.audio import AudioFormat, AudioFormatError, check_format
from wyoming_core.client import (
    ProtocolViolation,
    Reply,
    ServiceTimeout,
    VoiceError,
    converse_stream,
    synthesize,
    synthesize_stream,
)

from .backend import Core
from .services import Services, StageError
from .settings import TurnSettings
from .timing import Timing

_LOGGER = logging.getLogger(__name__)

# The services are not trusted to end a reply: a transcript or an answer is text, and this is
# far more than any real one (a TTS reply is bounded by --max-playback-seconds instead).
TEXT_REPLY_BYTES = 1024 * 1024
# The richest audio a TTS plausibly sends (48 kHz, 16 bit, stereo): with --max-playback-seconds,
# a bound on the bytes of one spoken reply whatever format it claims.
_TTS_BYTES_PER_SECOND = 48000 * 2 * 2


def _checked(rate: object, width: object, channels: object) -> AudioFormat:
    """The format of TTS audio, checked before anything is computed from it."""
    try:
        return check_format(rate, width, channels)
    except AudioFormatError as err:
        raise ProtocolViolation(f"unusable audio: {err}") from None


class Answer:
    """Ask the handle service about `text` and speak its answer; `run()` returns the reply text."""

    def __init__(
        self,
        text: str,
        conversation_id: str,
        settings: TurnSettings,
        services: Services,
        core: Core,
        timing: Timing,
    ) -> None:
        self.text = text
        self.conversation_id = conversation_id
        self.settings = settings
        self.services = services
        self.core = core
        self.timing = timing
        self.sentences: asyncio.Queue[str | None] = asyncio.Queue()
        self.reply_text: list[str] = []
        self.handled = asyncio.Event()  # the handle service's answer is complete
        # The instances asked, so the one at fault when a deadline passes can be named and marked.
        self.handle_tried: list[str] = []
        self.tts_tried: list[str] = []

    async def run(self) -> str:
        # A reply plays as it comes, so it cannot rightly take much longer than its audio: the
        # whole answer (handle and TTS) gets --handle-timeout plus --max-playback-seconds.
        overall = self.settings.handle_timeout + self.core.player.max_queued_seconds
        try:
            async with asyncio.timeout(overall), asyncio.TaskGroup() as group:
                group.create_task(self._handle())
                group.create_task(self._speak())
        except ExceptionGroup as group:
            first = group.exceptions[0]
            if isinstance(first, StageError):
                raise first from None
            raise
        except TimeoutError:
            err = ServiceTimeout(f"the answer was not over within {overall:g} s")
            if self.handled.is_set():
                raise self.services.at_fault("tts", self.tts_tried, err) from None
            raise self.services.at_fault("handle", self.handle_tried, err) from None
        return " ".join(self.reply_text).strip()

    # -- the handle service: sentences into the queue ---------------------------------------------

    def _ask(self, uri: str) -> AsyncIterator[str | Reply]:
        return converse_stream(
            uri,
            self.text,
            self.conversation_id,
            language=self.settings.language,
            timeout=self.settings.handle_timeout,
            max_bytes=TEXT_REPLY_BYTES,
        )

    async def _handle(self) -> None:
        streamed = False
        timing = self.timing
        try:
            async for item in self.services.stream("handle", self._ask, self.handle_tried):
                if isinstance(item, Reply):
                    self.reply_text.append(item.text)
                    if not streamed and item.text.strip():
                        timing.first_sentence = timing.first_sentence or time.monotonic()
                        self.core.tell("sentence", text=item.text)
                        self.sentences.put_nowait(item.text)
                elif item.strip():
                    streamed = True
                    timing.first_sentence = timing.first_sentence or time.monotonic()
                    _LOGGER.debug("Sentence: %r", item)
                    self.core.tell("sentence", text=item)
                    # A streaming TTS only sees a sentence end once whitespace follows the full
                    # stop; each chunk is a whole sentence, so say so at once instead of leaving
                    # TTS waiting for the next one.
                    self.sentences.put_nowait(item if item[-1:].isspace() else item + " ")
        finally:
            self.sentences.put_nowait(None)
        self.handled.set()

    # -- TTS: the queue's sentences to the speaker ------------------------------------------------

    async def _pieces(self, first: str) -> AsyncIterator[str]:
        yield first
        while (piece := await self.sentences.get()) is not None:
            yield piece

    async def _tts(
        self, uri: str, pieces: AsyncIterator[str]
    ) -> AsyncGenerator[tuple[bytes, AudioFormat], None]:
        """Streaming TTS when the service supports it; else one plain `synthesize` per sentence."""
        voice, language, timeout = self.settings.voice, self.settings.language, self.settings.tts_timeout
        max_bytes = int(self.core.player.max_queued_seconds * _TTS_BYTES_PER_SECOND)
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

    async def _speak(self) -> None:
        player = self.core.player
        generation = player.generation
        converter = player.converter()
        # Wait for the first sentence before opening TTS: nothing to say, no request.
        first = await self.sentences.get()
        if first is None:
            return
        spoken, limit = 0.0, player.max_queued_seconds
        # Fresh pieces per instance: one that could not be connected to took nothing.
        replies = self.services.stream("tts", lambda uri: self._tts(uri, self._pieces(first)), self.tts_tried)
        try:
            async with contextlib.aclosing(replies) as audio_stream:
                async for audio, fmt in audio_stream:
                    self.timing.first_chunk = self.timing.first_chunk or time.monotonic()
                    # Counted before converting: a few bytes at a low rate can be hours.
                    spoken += len(audio) / fmt.bytes_per_second
                    if spoken > limit:
                        raise ProtocolViolation(
                            f"the reply is longer than {limit:g} s of audio (--max-playback-seconds)"
                        )
                    pcm = converter.convert(audio, fmt)
                    starts = player.enqueue(pcm, generation)
                    if starts is not None and not self.timing.first_audio:
                        self.timing.first_audio = starts
                        self.core.speaking("first reply audio")
        except VoiceError as err:  # the reply broke a bound (the pool's own failures are StageErrors)
            raise self.services.at_fault("tts", self.tts_tried, err) from None
