"""Per-connection handler: a `transcript` in, a streamed answer out, always ending in handled/not-handled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from wyoming.asr import Transcript
from wyoming.event import Event
from wyoming.handle import Handled, HandledChunk, HandledStart, HandledStop, NotHandled
from wyoming.info import Attribution, HandleModel, HandleProgram, Info

from wyoming_core import PROJECT_ATTRIBUTION
from wyoming_core.errors import INTERNAL_ERROR
from wyoming_core.handler import ConnectionHandler, Route
from wyoming_core.logs import clip, transcript_level
from wyoming_core.protocol import Limits

from . import __version__
from .backend import OllamaBackend
from .conversation import Conversations, Outcome
from .home import Home
from .metrics import LlmMetrics, TurnTimer
from .names import conversation_key
from .settings import LlmSettings

_LOGGER = logging.getLogger(__name__)

SORRY = "Sorry, something went wrong. Please try again."


def build_info(settings: LlmSettings, backend: OllamaBackend, home: Home) -> Info:
    """Cheap and never waits: uses what the start-up check found, if it has finished.

    `supports_home_control` (wyoming >= 1.10) tells Home Assistant 2026.5+ that this agent
    acts on the home: true while the connection to Home Assistant is up."""
    return Info(
        handle=[
            HandleProgram(
                name="wyoming-llm",
                description="Conversation on a local Ollama model, answers streamed sentence by sentence",
                attribution=PROJECT_ATTRIBUTION,
                installed=True,
                version=__version__,
                models=[
                    HandleModel(
                        name=settings.model,
                        description=f"{settings.model} served by Ollama at {settings.ollama_url}",
                        attribution=Attribution(name="Ollama", url="https://ollama.com"),
                        installed=backend.model_installed is not False,
                        version=None,
                        languages=list(settings.languages),
                    )
                ],
                supports_handled_streaming=True,
                supports_home_control=home.connected,
            )
        ]
    )


def parse_transcript(event: Event) -> Transcript:
    """Lenient: a missing or odd field never ends the connection; an empty text is answered."""
    data = event.data or {}
    text, language, context = data.get("text"), data.get("language"), data.get("context")
    return Transcript(
        text=text if isinstance(text, str) else "",
        language=language if isinstance(language, str) and language.strip() else None,
        context=context if isinstance(context, dict) else None,
    )


class LlmHandler(ConnectionHandler):
    metrics: LlmMetrics

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limits: Limits,
        settings: LlmSettings,
        conversations: Conversations,
        info: Callable[[], Info],
        metrics: LlmMetrics,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.conversations = conversations
        self._info = info
        self._answering: asyncio.Task[None] | None = None
        # Set once the final handled/not-handled is out: after it, a disconnect is normal.
        self._answered = False
        super().__init__(reader, writer, limits)

    def info(self) -> Info:
        return self._info()

    def routes(self) -> Mapping[str, Route]:
        return {"transcript": self._on_transcript}

    async def _on_transcript(self, event: Event) -> bool:
        transcript = parse_transcript(event)
        await self._cancel()  # a new question replaces an unfinished one
        # Answer in a task so the read loop keeps reading: it is how a disconnect is noticed.
        self._answered = False
        self._answering = asyncio.create_task(self._answer(transcript))
        return True

    async def _answer(self, transcript: Transcript) -> None:
        timer = self.metrics.turn()
        context: dict[str, Any] = dict(transcript.context or {})
        key = conversation_key(context)
        if key is None:
            # No id at all: a fresh conversation, whose id goes back so the client can continue it.
            context["conversation_id"] = uuid.uuid4().hex
            key = conversation_key(context) or ""
        started = time.monotonic()
        try:
            await self.write_event(HandledStart(context=context).event())
            say = partial(self._say, timer)
            outcome = await self.conversations.respond(transcript.text, transcript.language, key, say)
        except ConnectionError:
            _LOGGER.debug("Client %s went away during the answer", self.peer)
            return
        except Exception:
            _LOGGER.exception("Unexpected error while answering %s", self.peer)
            outcome = Outcome(False, SORRY, INTERNAL_ERROR)
        final = Handled if outcome.handled else NotHandled
        try:
            await self.write_event(final(text=outcome.text, context=context).event())
            self._answered = True
            await self.write_event(HandledStop().event())
        except ConnectionError:
            _LOGGER.debug("Client %s went away before the answer's end", self.peer)
            return
        timer.done(outcome.handled, outcome.reason, outcome.model_seconds)
        _LOGGER.debug(
            "%s %s in %.2f s",
            clip(key),
            "answered" if outcome.handled else f"not handled ({outcome.reason})",
            time.monotonic() - started,
        )
        # What was said is private: at INFO only with --log-transcripts.
        level = transcript_level(self.settings.log_transcripts)
        _LOGGER.log(level, "Transcript: '%s'", clip(transcript.text, 1000))
        _LOGGER.log(level, "Reply: '%s'", clip(outcome.text, 1000))

    async def _say(self, timer: TurnTimer, sentence: str) -> None:
        await self.write_event(HandledChunk(text=sentence).event())
        timer.sentence()

    async def _cancel(self) -> None:
        task, self._answering = self._answering, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def disconnect(self) -> None:
        if self._answering is not None and not self._answering.done() and not self._answered:
            _LOGGER.info("Client %s left before the answer was complete; stopping the model", self.peer)
        await self._cancel()
