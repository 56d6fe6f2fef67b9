"""`python -m wyoming_llm`: start the conversation service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial

from wyoming_core.cli import run_service
from wyoming_core.server import RunningServer, serve

from .backend import OllamaBackend
from .conversation import Conversations
from .handler import LlmHandler, build_info
from .memory import History
from .settings import LlmSettings, build_parser, settings_from_args

_LOGGER = logging.getLogger("wyoming_llm")

HISTORY_FILE = "history.sqlite3"


async def main(settings: LlmSettings) -> None:
    history = History(
        settings.data_dir / HISTORY_FILE, settings.max_history_turns, settings.history_idle_seconds
    )
    await history.open()
    backend = OllamaBackend(settings)
    conversations = Conversations(settings, backend, history)
    # Checked and warmed in the background: describe is answered meanwhile.
    start_up = asyncio.create_task(backend.start_up())

    def on_started(_server: RunningServer) -> None:
        _LOGGER.info(
            "wyoming-llm is ready: answering with %s via Ollama at %s", settings.model, settings.ollama_url
        )

    try:
        await serve(
            settings.server,
            partial(
                LlmHandler,
                settings=settings,
                conversations=conversations,
                info=partial(build_info, settings, backend),
            ),
            service_name="wyoming-llm",
            on_started=on_started,
        )
    finally:
        start_up.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await start_up
        await backend.close()
        await history.close()


def run(argv: list[str] | None = None) -> None:
    settings = settings_from_args(build_parser().parse(argv))
    run_service(lambda: main(settings), name="llm", debug=settings.debug)


if __name__ == "__main__":
    run()
