"""One reply: sentences in (all at once, or as a stream delivers them), audio events out in order.

Sentences are synthesized one at a time, in the order they came, and each one's audio is sent
as soon as it is ready. Cancelling the job (the client went away) stops it at once, a model run
already under way included, so no CPU is spent on audio nobody will hear.

Every part queues for the shared synthesis pool on its own. Until a reply has sent audio, its
part is urgent (a listener hears nothing yet); after that its parts are only "likely": they
are needed, but the audio before them is still playing. So the first audio of a new reply
goes before the later parts of replies already speaking, and one long reply cannot starve a
short one: the short one waits at most for the parts already being synthesized.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.tts import SynthesizeStopped

from wyoming_core.errors import INTERNAL_ERROR, VOICE_UNAVAILABLE
from wyoming_core.workers import Priority

from .engine import Interrupt, LoadedVoice, SynthesisInterrupted, SynthesisOptions, VoiceCache, VoiceLoadError
from .text import FIRST_PART_WORDS, clause_parts
from .voices import VoiceEntry

_LOGGER = logging.getLogger(__name__)


_WIDTH = 2
_CHANNELS = 1


@dataclass(frozen=True)
class SpeechRequest:
    voice: VoiceEntry
    options: SynthesisOptions
    # True for synthesize-start ... synthesize-stop: the reply ends with synthesize-stopped.
    streaming: bool


@dataclass(frozen=True)
class JobSettings:
    sentence_silence: float
    samples_per_chunk: int
    clause_split: bool


class SpeechJob:
    """Synthesizes the sentences it is given and writes audio-start, audio-chunk*, audio-stop."""

    def __init__(
        self,
        request: SpeechRequest,
        cache: VoiceCache,
        settings: JobSettings,
        send: Callable[[Event], Awaitable[None]],
        on_error: Callable[[str, str], Awaitable[None]],
        peer: str,
        after: asyncio.Task[None] | None = None,
    ) -> None:
        self.request = request
        self.cache = cache
        self.settings = settings
        self._send = send
        self._on_error = on_error
        self.peer = peer
        # (text, True if it is a leading clause whose sentence goes on in the next item)
        self._queue: asyncio.Queue[tuple[str, bool] | None] = asyncio.Queue()
        self._after = after
        self.parts_done = 0
        self.sentences_done = 0
        # True while the job only waits for the client's next text (then the client is idle).
        self._waiting_for_text = False
        self._interrupt = Interrupt()
        self.task = asyncio.create_task(self._run())

    def add(self, sentences: list[str]) -> None:
        for sentence in sentences:
            self._queue.put_nowait((sentence, False))

    def add_clause(self, clause: str) -> None:
        """The start of a sentence still being streamed; the next item continues it."""
        self._queue.put_nowait((clause, True))

    def finish(self) -> None:
        """No more sentences: the audio ends once the queued ones are spoken."""
        self._queue.put_nowait(None)

    @property
    def working(self) -> bool:
        """Queued, loading a voice or synthesizing: the connection is busy, not idle."""
        return not self.task.done() and not self._waiting_for_text

    async def _next(self) -> tuple[str, bool] | None:
        self._waiting_for_text = self._queue.empty()
        try:
            return await self._queue.get()
        finally:
            self._waiting_for_text = False

    def cancel(self) -> None:
        if not self.task.done():
            self._log_stopped()
            self._interrupt.set()  # the worker thread too, not just the task waiting for it
            self.task.cancel()

    def _log_stopped(self) -> None:
        _LOGGER.info(
            "Stopped synthesis for %s after %d parts of %d sentences: the connection ended",
            self.peer,
            self.parts_done,
            self.sentences_done,
        )

    async def _run(self) -> None:
        try:
            if self._after is not None:  # one reply at a time per connection, in order
                # Waits for the reply before without taking on its outcome, yet a cancellation of
                # this job still ends it here (suppressing BaseException swallowed it).
                await asyncio.wait({self._after})
            await self._speak()
        except VoiceLoadError as err:
            _LOGGER.error("%s", err)
            await self._on_error(VOICE_UNAVAILABLE, str(err))
        except ConnectionError as err:
            # A failed write can notice the client has gone before the reader does.
            _LOGGER.debug("Client %s went away during synthesis: %s", self.peer, err)
            self._log_stopped()
        except SynthesisInterrupted:
            pass  # cancel() said so already
        except asyncio.CancelledError:
            raise
        except Exception as err:
            _LOGGER.exception("Synthesis failed for %s", self.peer)
            await self._on_error(INTERNAL_ERROR, f"Synthesis failed: {err}")

    async def _speak(self) -> None:
        voice = await self.cache.get(self.request.voice)
        rate = voice.sample_rate
        started = False
        first = True
        continuing = False  # this item goes on with the sentence of the one before
        while (item := await self._next()) is not None:
            sentence, is_clause = item
            split = first and self.settings.clause_split and not is_clause
            # The rest of a sentence whose first clause went ahead grows from there: no word cut.
            first_words = None if continuing else FIRST_PART_WORDS
            parts = clause_parts(sentence, first_words=first_words) if split else [sentence]
            joined = continuing  # no sentence silence before the rest of a sentence
            spoke = False
            for part in parts:
                priority = Priority.LIKELY if started else Priority.URGENT
                options = self.request.options
                pcm = await self.cache.synthesize(voice, part, options, self._interrupt, priority)
                self.parts_done += 1
                if not pcm:
                    continue
                if not started:
                    await self._send(AudioStart(rate=rate, width=_WIDTH, channels=_CHANNELS).event())
                    started = True
                elif not joined and self.settings.sentence_silence > 0:
                    # Between sentences only; clause parts join without added silence.
                    silence = int(rate * self.settings.sentence_silence) * _WIDTH * _CHANNELS
                    await self._send_audio(voice, bytes(silence))
                joined = spoke = True
                await self._send_audio(voice, pcm)
            self.sentences_done += 0 if is_clause else 1
            # The rest of a sentence that started with an early clause is still "first".
            first = first and (is_clause or not spoke)
            continuing = is_clause
        if not started:  # nothing to say: still exactly one (empty) audio-start/audio-stop
            await self._send(AudioStart(rate=rate, width=_WIDTH, channels=_CHANNELS).event())
        await self._send(AudioStop().event())
        if self.request.streaming:
            await self._send(SynthesizeStopped().event())
        _LOGGER.debug(
            "Reply to %s done: %d sentences, %d parts",
            self.peer,
            self.sentences_done,
            self.parts_done,
        )

    async def _send_audio(self, voice: LoadedVoice, pcm: bytes) -> None:
        step = self.settings.samples_per_chunk * _WIDTH * _CHANNELS
        for offset in range(0, len(pcm), step):
            chunk = AudioChunk(
                rate=voice.sample_rate, width=_WIDTH, channels=_CHANNELS, audio=pcm[offset : offset + step]
            )
            await self._send(chunk.event())
