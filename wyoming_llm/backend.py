"""Ollama through the official async client: streamed tokens, bounded waits, retries, plain-words failures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import ollama
from pydantic import ValidationError

from .settings import LlmSettings

_LOGGER = logging.getLogger(__name__)

# How long the start-up check waits for Ollama to list its models.
PROBE_TIMEOUT = 5.0
CONNECT_TIMEOUT = 3.0


@dataclass(frozen=True)
class Failure:
    """A kind of failure: what the log says and what the satellite says."""

    code: str
    spoken: str


UNREACHABLE = Failure("unreachable", "I can't reach the language model right now.")
MODEL_MISSING = Failure("model-missing", "The language model isn't installed yet.")
TIMEOUT = Failure("timeout", "The language model is taking too long to answer. Please try again.")
SERVER_ERROR = Failure("server-error", "The language model ran into a problem. Please try again.")
CUT = Failure("cut", "Sorry, I lost the connection to the language model.")


@dataclass(frozen=True)
class ToolRequest:
    """The model asks for a tool to be run (Ollama's `message.tool_calls`)."""

    name: str
    arguments: Any


class LlmError(Exception):
    def __init__(self, failure: Failure, cause: str, *, transient: bool = False) -> None:
        super().__init__(cause)
        self.failure = failure
        self.cause = cause
        self.transient = transient


def canonical(model: str) -> str:
    return model if ":" in model else f"{model}:latest"


def keep_alive_value(text: str) -> str | float:
    """Ollama takes a duration ("30m") or a number of seconds (-1: keep loaded forever)."""
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        return text


def classify(err: BaseException, url: str, model: str) -> LlmError:
    """Map whatever the client raised to a failure with a cause in plain words."""
    if isinstance(err, LlmError):
        return err
    if isinstance(err, ollama.ResponseError):
        status = err.status_code
        if status == 404:
            cause = f"the model {model} is not pulled in Ollama (run: ollama pull {model})"
            return LlmError(MODEL_MISSING, cause)
        transient = status in (429, 500, 502, 503, 504) or status == -1
        where = "in the middle of the answer" if status == -1 else f"with status {status}"
        return LlmError(SERVER_ERROR, f"Ollama reported an error {where}: {err.error}", transient=transient)
    if isinstance(err, ConnectionError | httpx.ConnectError | httpx.ConnectTimeout):
        # The ollama client's own message is a long download hint; say what happened instead.
        detail = "nothing answers there" if isinstance(err, ConnectionError) else str(err) or "no connection"
        return LlmError(UNREACHABLE, f"Ollama is not reachable at {url} ({detail})", transient=True)
    if isinstance(err, httpx.TransportError):
        cause = f"the connection to Ollama broke off ({type(err).__name__}: {err})"
        return LlmError(CUT, cause, transient=True)
    if isinstance(err, json.JSONDecodeError | ValidationError | httpx.DecodingError):
        return LlmError(SERVER_ERROR, f"{url} did not answer like Ollama does ({err})")
    if isinstance(err, TimeoutError):
        return LlmError(TIMEOUT, "Ollama did not answer in time")
    return LlmError(SERVER_ERROR, f"unexpected error talking to Ollama: {type(err).__name__}: {err}")


def _refuses_tools(err: BaseException) -> bool:
    return isinstance(err, ollama.ResponseError) and "does not support tools" in str(err.error)


class OllamaBackend:
    """One shared client; each `chat()` call is an independent streamed request."""

    def __init__(self, settings: LlmSettings) -> None:
        self.settings = settings
        self.url = settings.ollama_url
        self.model = settings.model
        # None until the start-up check has run.
        self.reachable: bool | None = None
        self.model_installed: bool | None = None
        # Whether the model can call tools (Ollama's /api/show capabilities); None: unknown yet.
        self.supports_tools: bool | None = None
        # Seconds the warm-up took to load the model; None: not (yet) warmed up.
        self.warm_seconds: float | None = None
        self._client = ollama.AsyncClient(host=self.url, timeout=httpx.Timeout(None, connect=CONNECT_TIMEOUT))
        self._options: dict[str, Any] = {}
        if settings.temperature is not None:
            self._options["temperature"] = settings.temperature
        self._keep_alive = keep_alive_value(settings.keep_alive)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._client.close()

    async def start_up(self) -> None:
        """Say once, in plain words, whether Ollama and the model are there; then load the model."""
        try:
            listing = await asyncio.wait_for(self._client.list(), PROBE_TIMEOUT)
        except Exception as err:  # any failure here is reported, never fatal
            self.reachable = False
            cause = classify(err, self.url, self.model).cause
            _LOGGER.warning(
                "At start-up, %s. Until it is, questions get a short apology, "
                "except the time and the date, which are answered locally. To fix: install Ollama "
                "(https://ollama.com/download), run `ollama pull %s` and keep it running "
                "(`ollama serve`); or point --ollama-url at an Ollama elsewhere",
                cause,
                self.model,
            )
            return
        self.reachable = True
        names = {canonical(m.model or "") for m in listing.models}
        self.model_installed = canonical(self.model) in names
        if not self.model_installed:
            _LOGGER.warning(
                "Ollama at %s is reachable, but the model %s is not pulled (it has: %s); run: ollama pull %s",
                self.url,
                self.model,
                ", ".join(sorted(names)) or "no models",
                self.model,
            )
            return
        _LOGGER.info("Ollama at %s is reachable and has the model %s", self.url, self.model)
        await self.check_tools()
        if self.settings.warm_up:
            await self.warm_up()

    async def check_tools(self) -> None:
        """Ask Ollama once whether the model can call tools; say so once if it cannot."""
        try:
            shown = await asyncio.wait_for(self._client.show(self.model), PROBE_TIMEOUT)
        except Exception as err:  # unknown: tools are offered, and a refusal is handled per request
            _LOGGER.debug("Could not read the model's capabilities: %s", err)
            return
        capabilities = getattr(shown, "capabilities", None)
        if capabilities is None:
            return
        self.supports_tools = "tools" in capabilities
        if not self.supports_tools:
            _LOGGER.warning(
                "The model %s cannot use tools: it answers without controlling the home "
                "(the commands the local sentences cover still work). Pick a model with tool "
                "support, e.g. qwen2.5 or llama3.2",
                self.model,
            )

    async def warm_up(self) -> None:
        """Load the model now (an empty prompt only loads it) so the first question does not wait."""
        started = time.monotonic()
        try:
            await self._client.generate(model=self.model, prompt="", keep_alive=self._keep_alive)
        except Exception as err:
            cause = classify(err, self.url, self.model).cause
            _LOGGER.warning("Could not load the model %s in advance: %s", self.model, cause)
            return
        self.warm_seconds = time.monotonic() - started
        _LOGGER.info("The model %s is loaded and warm (%.1f s)", self.model, self.warm_seconds)

    async def chat(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> AsyncGenerator[str | ToolRequest, None]:
        """Yield the answer's text pieces and the tools it asks for; raise LlmError.

        Transient failures before the first piece are retried with backoff for
        `retry_seconds`, and never past the first-token deadline. After the first
        piece nothing is retried: it may already have been spoken.
        """
        settings = self.settings
        started = time.monotonic()
        first_deadline = started + settings.first_token_timeout
        retry_until = started + settings.retry_seconds
        delay = 0.2
        attempt = 0
        while True:
            attempt += 1
            produced = False
            try:
                async for piece in self._attempt(messages, first_deadline, tools):
                    produced = self.reachable = True
                    yield piece
                return
            except Exception as err:  # classified below, never swallowed
                if tools and not produced and _refuses_tools(err):
                    # Ollama says 400 for tools on a model without tool support: answer without.
                    self.supports_tools = False
                    _LOGGER.warning("The model %s cannot use tools: answering without them", self.model)
                    tools = None
                    continue
                failure = classify(err, self.url, self.model)
                if failure.failure is UNREACHABLE:
                    self.reachable = False
                now = time.monotonic()
                if produced or not failure.transient or now + delay > min(retry_until, first_deadline):
                    if attempt > 1:
                        failure.cause += f" (after {attempt} attempts)"
                    raise failure from err
                _LOGGER.info("Retrying in %.1f s: %s", delay, failure.cause)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _attempt(
        self, messages: list[dict[str, Any]], first_deadline: float, tools: list[dict[str, Any]] | None
    ) -> AsyncIterator[str | ToolRequest]:
        stream = await self._client.chat(
            model=self.model,
            messages=messages,
            tools=tools or None,
            stream=True,
            options=self._options or None,
            keep_alive=self._keep_alive,
        )
        gap = self.settings.first_token_timeout
        first = True
        try:
            while True:
                # Before the first token the deadline is shared with earlier attempts; after
                # it, a stall longer than the same timeout between two tokens is a failure.
                timeout = first_deadline - time.monotonic() if first else gap
                if timeout <= 0:
                    raise LlmError(TIMEOUT, "Ollama gave no answer in time")
                try:
                    part = await asyncio.wait_for(anext(stream), timeout)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    what = "no first word" if first else "no further words"
                    limit = self.settings.first_token_timeout
                    cause = f"the model {self.model} gave {what} within {limit:g} s"
                    raise LlmError(TIMEOUT, cause) from None
                content = part.message.content if part.message else None
                if content:
                    first = False
                    yield content
                for call in (part.message.tool_calls if part.message else None) or []:
                    first = False
                    yield ToolRequest(call.function.name, call.function.arguments)
                # After `done` the loop reads on to the end of the body, so the connection is reused.
        finally:
            # Closes the HTTP response: Ollama stops generating for a client that left.
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
