"""Standalone turns: mic -> STT (while the user speaks) -> handle (streamed sentences) ->
streaming TTS per sentence -> speaker, the reply playing while later sentences are generated
(`answer.Answer`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator

from wyoming_core.client import (
    Partial,
    ServiceTimeout,
    Transcription,
    VoiceError,
    describe,
    transcribe_stream,
)
from wyoming_core.logs import transcript_level

from .answer import TEXT_REPLY_BYTES, Answer
from .backend import Backend
from .services import Services, StageError
from .settings import MIC_FORMAT, TurnSettings
from .timing import Timing

_LOGGER = logging.getLogger(__name__)


class StandaloneBackend(Backend):
    def __init__(self, settings: TurnSettings, services: Services, name: str) -> None:
        self.settings = settings
        self.services = services
        # One conversation per satellite, across turns, so the handler keeps context.
        self.conversation_id = f"satellite-{name}-{uuid.uuid4().hex[:8]}"
        self._audio: asyncio.Queue[bytes | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._timing = Timing()
        self._stt_ends_turns: dict[str, bool] = {}
        # Seconds of wake word audio (the pre-roll) the request's audio begins with.
        self._request_start = 0.0

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
        # Woken by the wake word: the pre-roll holds it (a follow-up's holds the request itself).
        self._request_start = len(preroll) / MIC_FORMAT.bytes_per_second if wake_word is not None else 0.0
        self._timing = Timing()
        self._task = asyncio.create_task(self._turn(self._audio, self._timing), name="turn")

    async def audio(self, chunk: bytes) -> None:
        if self._audio is not None:
            self._audio.put_nowait(chunk)

    async def end_of_speech(self, at: float) -> None:
        self._timing.end_of_speech = at
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
        text: str | None = None
        try:
            text = await self._transcribe(audio, timing)
            if not text.strip():
                _LOGGER.info("Heard nothing to answer")
                await self._end(transcript=text)
                return
            answer = Answer(text, self.conversation_id, self.settings, self.services, self.core, timing)
            reply = await answer.run()
            _LOGGER.log(transcript_level(self.settings.log_transcripts), "Reply: %r", reply)
            player = self.core.player
            with contextlib.suppress(TimeoutError):  # the reply is bounded; the speaker may not be
                await player.wait_done(timeout=player.max_queued_seconds + 30)
            timing.log()
            self.core.tell("timing", **timing.stages())
            await self._end(follow_up=reply.rstrip().endswith("?"), transcript=text, reply=reply)
        except StageError as err:
            _LOGGER.error("%s", err)
            await self._end(error=True, transcript=text, problem=str(err))
        except asyncio.CancelledError:
            raise
        except Exception:
            _LOGGER.exception("Turn failed")
            problem = "internal error (the satellite's log says more)"
            await self._end(error=True, transcript=text, problem=problem)

    async def _end(
        self,
        *,
        error: bool = False,
        follow_up: bool = False,
        transcript: str | None = None,
        reply: str | None = None,
        problem: str | None = None,
    ) -> None:
        self._task = None  # this task is ending: nothing to cancel
        await self.core.end_turn(
            error=error, follow_up=follow_up, transcript=transcript, reply=reply, problem=problem
        )

    async def _ends_turns(self, uri: str) -> bool:
        """Whether the STT at `uri` ends turns itself (`describe`, asked once per address)."""
        if uri not in self._stt_ends_turns:
            try:
                info = await describe(uri, timeout=5.0)
            except VoiceError as err:  # the request itself will fail over; ask again next time
                _LOGGER.debug("Could not describe the STT at %s: %s", uri, err)
                return False
            ends = any(not getattr(p, "requires_external_vad", True) for p in info.asr)
            if ends:
                _LOGGER.info("The STT at %s ends turns itself: its transcript ends the request", uri)
            self._stt_ends_turns[uri] = ends
        return self._stt_ends_turns[uri]

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

        async def request(uri: str) -> AsyncIterator[Partial | Transcription]:
            # An STT that ends turns itself is asked to (vad_sensitivity) and is waited for.
            ends_turns = await self._ends_turns(uri)
            self.service_ends_turns = ends_turns
            # A fresh reader of the queue per instance: one that could not be connected to took nothing.
            async for item in transcribe_stream(
                uri,
                chunks(),
                MIC_FORMAT,
                language=self.settings.language,
                timeout=stt_timeout,
                max_bytes=TEXT_REPLY_BYTES,
                vad_sensitivity=self.settings.vad_sensitivity if ends_turns else None,
                # A pause after "Hey Jarvis" is not the end of the request.
                context={"request_starts_at": round(self._request_start, 3)} if ends_turns else None,
            ):
                yield item

        result: Transcription | None = None
        tried: list[str] = []
        try:
            async with deadline:
                async for item in self.services.stream("asr", request, tried):
                    if isinstance(item, Transcription):
                        result = item
                    else:
                        self.core.tell("partial", text=item.text)
        except TimeoutError:
            err = ServiceTimeout(f"no transcript within {stt_timeout:g} s of the end of speech")
            raise self.services.at_fault("asr", tried, err) from None
        timing.transcript = time.monotonic()
        if result is not None and result.early:
            # The STT heard the user finish: the request is over now, not after our silence.
            await self.core.speech_over("the speech-to-text service heard the end of the turn")
        text = result.text if result is not None else ""
        self.core.tell("transcript", text=text)
        # What was said is private: at INFO only with --log-transcripts.
        _LOGGER.log(transcript_level(self.settings.log_transcripts), "Transcript: %r", text)
        return text
