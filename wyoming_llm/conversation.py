"""One answer: local commands, the prompt with memory, streamed sentences, failures turned into speech."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from wyoming_core.logs import clip
from wyoming_core.metrics import Stopwatch

from . import local, replies
from .backend import TIMEOUT, LlmError, OllamaBackend, ToolRequest
from .home import Home, claims_action
from .memory import History
from .names import MAX_KEY_CHARS, LanguageCheck, bounded_id
from .prompt import system_message
from .settings import LlmSettings
from .speech import SentenceStream

_LOGGER = logging.getLogger(__name__)

SentenceSink = Callable[[str], Awaitable[None]]

# At most this many tool calls in one turn (the answer's time budget bounds it too).
MAX_TOOL_CALLS = 5


@dataclass(frozen=True)
class Outcome:
    handled: bool
    text: str
    # Why it was not handled (a failure code), for logs and tests.
    reason: str | None = None
    # Seconds spent reading the model's answer; None: answered without asking the model.
    model_seconds: float | None = None


class Conversations:
    """Shared by every connection; conversations only wait for their own earlier turns."""

    def __init__(
        self,
        settings: LlmSettings,
        backend: OllamaBackend,
        history: History,
        home: Home,
        now: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.history = history
        self.home = home
        self._now = now
        # Turns of one conversation run one after the other, so its memory stays in order. Weak:
        # only conversations with a turn in progress have one (bounded by the connection cap).
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._language = LanguageCheck(settings.languages[0])

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    async def respond(self, text: str, language: str | None, key: str, say: SentenceSink) -> Outcome:
        """Answer `text` in conversation `key`; each finished sentence goes to `say` at once."""
        # Checked before it goes anywhere (prompt, Home Assistant's sentences, logs, memory).
        language = self._language(language)
        key = bounded_id(key, MAX_KEY_CHARS)  # the handler's keys are already short
        text = " ".join(text.split())
        if not text:
            return Outcome(False, local.EMPTY_REPLY, "empty")
        limit = self.settings.max_transcript_chars
        if len(text) > limit:
            _LOGGER.warning(
                "Transcript of %d characters cut to %d (conversation %s)", len(text), limit, clip(key)
            )
            text = text[:limit]

        lock = self._lock(key)
        async with lock:
            if local.is_reset(text):
                await self.history.clear(key)
                _LOGGER.info("Conversation %s reset on request", clip(key))
                await say(local.RESET_REPLY)
                return Outcome(True, local.RESET_REPLY)
            done = await self.home.handle_locally(text, language)
            if done is not None:
                # A command the local sentences cover: no model needed, and nothing to remember.
                await say(done.text)
                return Outcome(done.handled, done.text, done.reason)
            if self.backend.reachable is False:
                # Ollama was down at the last try: the time and date need not wait for retries.
                answer = local.clock_answer(text, self._now())
                if answer is not None:
                    await say(answer)
                    return Outcome(True, answer)
            model = Stopwatch()
            outcome = await self._ask_model(text, language, key, say, model)
            return replace(outcome, model_seconds=model.seconds)

    async def _ask_model(
        self, text: str, language: str | None, key: str, say: SentenceSink, model: Stopwatch
    ) -> Outcome:
        now = self._now()
        tools = self.home.ollama_tools() if self.backend.supports_tools is not False else []
        messages = [
            system_message(self.settings.system_prompt, now, language, home=self._home_state(tools)),
            *await self.history.messages(key),
            {"role": "user", "content": text},
        ]
        sentences = SentenceStream()
        # Without tools the model can change nothing, so any claim that it did is false; with
        # tools, claims are checked when the user asked for a device action.
        guarded = not tools or await self.home.looks_like_action(text, language)
        turn = _Turn(self.home, say, guarded=guarded)
        try:
            async with asyncio.timeout(self.settings.answer_timeout):
                for _round in range(MAX_TOOL_CALLS + 1):
                    requests: list[ToolRequest] = []
                    async with model, contextlib.aclosing(self.backend.chat(messages, tools)) as pieces:
                        async for piece in pieces:
                            if isinstance(piece, ToolRequest):
                                requests.append(piece)
                                continue
                            for sentence in sentences.feed(piece):
                                await turn.say(sentence)
                    if not requests:
                        break
                    if turn.calls >= MAX_TOOL_CALLS:
                        _LOGGER.warning(
                            "The model asked for more than %d tool calls; stopped", MAX_TOOL_CALLS
                        )
                        await turn.say(replies.TOO_MANY_CALLS)
                        break
                    messages += await turn.run(requests, MAX_TOOL_CALLS)
                for sentence in sentences.flush():
                    await turn.say(sentence)
        except TimeoutError:
            limit = self.settings.answer_timeout
            err = LlmError(TIMEOUT, f"the answer took longer than {limit:g} s")
            return await self._failed(err, text, language, now, sentences, say)
        except LlmError as err:
            return await self._failed(err, text, language, now, sentences, say)

        answer = turn.text
        if not answer:
            _LOGGER.warning("The model's answer had nothing speakable in it (conversation %s)", clip(key))
            return Outcome(False, local.NO_ANSWER_REPLY, "nothing-speakable")
        if turn.refused:
            return Outcome(False, answer, "unbacked-claim")
        await self.history.add(key, text, answer)
        return Outcome(True, answer)

    def _home_state(self, tools: list[dict[str, Any]]) -> str:
        if tools:
            return "tools"
        if self.home.link is None:
            return "none"
        return "disconnected" if not self.home.connected else "no-tools"

    async def _failed(
        self,
        err: LlmError,
        text: str,
        language: str | None,
        now: datetime,
        sentences: SentenceStream,
        say: SentenceSink,
    ) -> Outcome:
        _LOGGER.warning("Could not answer: %s", err.cause)
        if not sentences.sentences:
            # Nothing said yet: the time and the date need no model.
            fallback = local.clock_answer(text, now)
            if fallback is not None:
                _LOGGER.info("Answered the time/date locally instead")
                await say(fallback)
                return Outcome(True, fallback)
            # A device command the local sentences did not know: say which name was unknown.
            unknown = await self.home.unknown_device_reply(text, language)
            if unknown is not None and self.home.link is not None:
                await say(unknown)
                return Outcome(False, unknown, "unknown-device")
        return Outcome(False, err.failure.spoken, err.failure.code)


class _Turn:
    """One answer's sentences and tool calls: a sentence that claims a device action is only
    spoken when an action really succeeded in this turn."""

    def __init__(self, home: Home, sink: SentenceSink, *, guarded: bool) -> None:
        self.home = home
        self.sink = sink
        # The user asked for a device action: the model's claims are checked.
        self.guarded = guarded
        self.calls = 0
        self.acted = False
        self.refused = False
        self.spoken: list[str] = []

    @property
    def text(self) -> str:
        return " ".join(self.spoken)

    async def say(self, sentence: str) -> None:
        if self.refused:
            return
        if self.guarded and not self.acted and claims_action(sentence):
            _LOGGER.warning("The model claimed an action that was not carried out; said so instead")
            self.refused = True
            if self.home.link is None:
                sentence = replies.NOT_CONNECTED
            else:
                sentence = replies.NOTHING_DONE if self.home.connected else replies.UNREACHABLE
        self.spoken.append(sentence)
        await self.sink(sentence)

    async def run(self, requests: list[ToolRequest], limit: int) -> list[dict[str, Any]]:
        """Run the calls (up to `limit` in the turn); the messages that give the model the results."""
        calls = [{"function": {"name": r.name, "arguments": r.arguments}} for r in requests]
        messages: list[dict[str, Any]] = [{"role": "assistant", "content": "", "tool_calls": calls}]
        for request in requests:
            if self.calls >= limit:
                content = "Error: too many tool calls in one answer; this one was not run."
            else:
                self.calls += 1
                outcome = await self.home.run_tool(request.name, request.arguments)
                self.acted = self.acted or outcome.acted
                content = outcome.content
            messages.append({"role": "tool", "content": content, "tool_name": request.name})
        return messages
