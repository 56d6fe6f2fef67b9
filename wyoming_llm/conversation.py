"""One answer: local commands, the prompt with memory, streamed sentences, failures turned into speech."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from . import local
from .backend import TIMEOUT, LlmError, OllamaBackend
from .memory import History
from .prompt import system_message
from .settings import LlmSettings
from .speech import SentenceStream

_LOGGER = logging.getLogger(__name__)

SentenceSink = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    handled: bool
    text: str
    # Why it was not handled (a failure code), for logs and tests.
    reason: str | None = None


class Conversations:
    """Shared by every connection; conversations only wait for their own earlier turns."""

    def __init__(
        self,
        settings: LlmSettings,
        backend: OllamaBackend,
        history: History,
        now: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.history = history
        self._now = now
        # Turns of one conversation run one after the other, so its memory stays in order.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    async def respond(self, text: str, language: str | None, key: str, say: SentenceSink) -> Outcome:
        """Answer `text` in conversation `key`; each finished sentence goes to `say` at once."""
        text = " ".join(text.split())
        if not text:
            return Outcome(False, local.EMPTY_REPLY, "empty")
        limit = self.settings.max_transcript_chars
        if len(text) > limit:
            _LOGGER.warning("Transcript of %d characters cut to %d (conversation %s)", len(text), limit, key)
            text = text[:limit]

        lock = self._lock(key)
        async with lock:
            if local.is_reset(text):
                await self.history.clear(key)
                _LOGGER.info("Conversation %s reset on request", key)
                await say(local.RESET_REPLY)
                return Outcome(True, local.RESET_REPLY)
            if self.backend.reachable is False:
                # Ollama was down at the last try: the time and date need not wait for retries.
                answer = local.clock_answer(text, self._now())
                if answer is not None:
                    await say(answer)
                    return Outcome(True, answer)
            return await self._ask_model(text, language, key, say)

    async def _ask_model(self, text: str, language: str | None, key: str, say: SentenceSink) -> Outcome:
        now = self._now()
        messages = [
            system_message(self.settings.system_prompt, now, language),
            *await self.history.messages(key),
            {"role": "user", "content": text},
        ]
        sentences = SentenceStream()
        try:
            async with asyncio.timeout(self.settings.answer_timeout):
                async with contextlib.aclosing(self.backend.chat(messages)) as pieces:
                    async for piece in pieces:
                        for sentence in sentences.feed(piece):
                            await say(sentence)
                for sentence in sentences.flush():
                    await say(sentence)
        except TimeoutError:
            limit = self.settings.answer_timeout
            err = LlmError(TIMEOUT, f"the answer took longer than {limit:g} s")
            return await self._failed(err, text, now, sentences, say)
        except LlmError as err:
            return await self._failed(err, text, now, sentences, say)

        answer = sentences.text
        if not answer:
            _LOGGER.warning("The model's answer had nothing speakable in it (conversation %s)", key)
            return Outcome(False, local.NO_ANSWER_REPLY, "nothing-speakable")
        await self.history.add(key, text, answer)
        return Outcome(True, answer)

    async def _failed(
        self, err: LlmError, text: str, now: datetime, sentences: SentenceStream, say: SentenceSink
    ) -> Outcome:
        _LOGGER.warning("Could not answer %r: %s", text[:60], err.cause)
        if not sentences.sentences:
            # Nothing said yet: the time and the date need no model.
            fallback = local.clock_answer(text, now)
            if fallback is not None:
                _LOGGER.info("Answered the time/date locally instead")
                await say(fallback)
                return Outcome(True, fallback)
        return Outcome(False, err.failure.spoken, err.failure.code)
