"""`python -m wyoming_llm`: start the conversation service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial

from wyoming_core.cli import run_service
from wyoming_core.ha import HomeLink
from wyoming_core.http import Health
from wyoming_core.server import RunningServer, serve

from . import __version__
from .backend import OllamaBackend
from .conversation import Conversations
from .handler import LlmHandler, build_info
from .home import Home
from .memory import History
from .metrics import LlmMetrics
from .settings import LlmSettings, build_parser, settings_from_args

_LOGGER = logging.getLogger("wyoming_llm")

HISTORY_FILE = "history.sqlite3"


async def _start_up(backend: OllamaBackend, metrics: LlmMetrics) -> None:
    await backend.start_up()
    if backend.warm_seconds is not None:
        metrics.model_loaded(backend.model, backend.warm_seconds)


def _health(backend: OllamaBackend, start_up: asyncio.Task[None]) -> Health:
    """Ready while Ollama answers and has the model (as far as the last request showed)."""
    reason = None
    if not start_up.done():
        reason = "checking Ollama and loading the model"
    elif backend.reachable is not True:
        reason = f"Ollama is not reachable at {backend.url}"
    elif backend.model_installed is False:
        reason = f"the model {backend.model} is not pulled in Ollama"
    return Health(reason is None, __version__, model=backend.model, reason=reason)


async def main(settings: LlmSettings) -> None:
    history = History(
        settings.data_dir / HISTORY_FILE, settings.max_history_turns, settings.history_idle_seconds
    )
    await history.open()
    backend = OllamaBackend(settings)
    link = HomeLink(settings.home) if settings.home is not None else None
    if link is not None:
        link.start()  # connects in the background; describe and talk work meanwhile
    home = Home(link, settings.languages[0])
    conversations = Conversations(settings, backend, history, home)
    metrics = LlmMetrics()
    # Checked and warmed in the background: describe is answered meanwhile.
    start_up = asyncio.create_task(_start_up(backend, metrics))

    def on_started(_server: RunningServer) -> None:
        _LOGGER.info(
            "wyoming-llm is ready: answering with %s via Ollama at %s", settings.model, settings.ollama_url
        )
        if link is None:
            _LOGGER.info("No Home Assistant connection (--ha-url): device commands get a polite refusal")

    try:
        await serve(
            settings.server,
            partial(
                LlmHandler,
                settings=settings,
                conversations=conversations,
                info=partial(build_info, settings, backend, home),
                metrics=metrics,
            ),
            service_name="wyoming-llm",
            on_started=on_started,
            metrics=metrics,
            health=partial(_health, backend, start_up),
        )
    finally:
        start_up.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await start_up
        await backend.close()
        if link is not None:
            await link.close()
        await history.close()


def run(argv: list[str] | None = None) -> None:
    settings = settings_from_args(build_parser().parse(argv))
    run_service(lambda: main(settings), name="llm", debug=settings.debug)


if __name__ == "__main__":
    run()
