"""`python -m wyoming_stt`: start the speech-to-text service."""

from __future__ import annotations

import asyncio
import logging
import sys
from functools import partial

from wyoming_core.logs import setup_logging
from wyoming_core.models import ModelNotFoundError
from wyoming_core.server import serve
from wyoming_core.workers import WorkerPool

from .engine import WhisperEngine
from .handler import SttHandler, build_info
from .models import resolve_model
from .settings import SttSettings, build_parser, settings_from_args

_LOGGER = logging.getLogger("wyoming_stt")


async def main(settings: SttSettings) -> None:
    resolved = resolve_model(settings.model, settings.data_dirs, settings.local_files_only)
    pool = WorkerPool(settings.workers, "stt-decode")
    engine = WhisperEngine(settings, resolved, pool)
    info = build_info(settings, engine)
    # Load in the background: the server answers describe while the model loads.
    load_task = asyncio.create_task(engine.load())
    try:
        await serve(
            settings.server,
            partial(SttHandler, settings=settings, engine=engine, info=info),
            service_name="wyoming-stt",
        )
    finally:
        load_task.cancel()
        pool.shutdown()


def run(argv: list[str] | None = None) -> None:
    settings = settings_from_args(build_parser().parse(argv))
    setup_logging(settings.debug, "stt")
    try:
        asyncio.run(main(settings))
    except ModelNotFoundError as err:
        _LOGGER.error("%s", err)
        sys.exit(2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    run()
