"""`python -m wyoming_stt`: start the speech-to-text service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from functools import partial

from wyoming_core.cli import StartupError, run_service
from wyoming_core.ha import HomeLink
from wyoming_core.http import Health
from wyoming_core.models import ModelNotFoundError
from wyoming_core.server import serve
from wyoming_core.workers import PriorityPool, WorkerPool, default_workers

from . import __version__
from .endpoint import AudioWorkers, DetectorPool
from .engine import Engines, WhisperEngine
from .handler import SttHandler, build_info
from .home_names import HomeNames
from .metrics import SttMetrics
from .models import ResolvedModel, resolve_model
from .settings import SttSettings, build_parser, settings_from_args
from .turn import TurnService

_LOGGER = logging.getLogger("wyoming_stt")


def _partial_model(settings: SttSettings) -> ResolvedModel | None:
    """The small model for partial transcripts; None: the main model makes them too."""
    name = settings.partial_model
    if name == "same" or not settings.partials:
        return None
    if name == "auto":
        # tiny.en when it is installed locally and smaller than the main model; never downloaded.
        if settings.model.startswith("tiny"):
            return None
        try:
            return resolve_model("tiny.en", settings.data_dirs, local_files_only=True)
        except ModelNotFoundError:
            _LOGGER.info("No tiny.en model installed; partial transcripts use the main model")
            return None
    return resolve_model(name, settings.data_dirs, settings.local_files_only)


async def _load(engine: WhisperEngine, metrics: SttMetrics) -> None:
    started = time.monotonic()
    await engine.load()
    if engine.is_loaded:
        metrics.model_loaded(engine.resolved.name, time.monotonic() - started)


def _health(engine: WhisperEngine, model: str) -> Health:
    """Ready once the main model has loaded."""
    reason = None if engine.is_loaded else engine.error or "loading the model"
    return Health(reason is None, __version__, model=model, reason=reason)


async def main(settings: SttSettings) -> None:
    resolved = resolve_model(settings.model, settings.data_dirs, settings.local_files_only)
    # Final decodes first, speculative ones next, partials last (shed when busy).
    pool = PriorityPool(settings.workers, "stt-decode")
    # Resampling and the VAD: short jobs, in their own threads so they never wait behind a decode.
    audio = AudioWorkers(WorkerPool(default_workers(), "stt-audio"), DetectorPool())
    names = None
    if settings.home is not None:
        names = HomeNames(HomeLink(settings.home), settings.names_refresh)
        names.start()  # in the background: transcripts are unbiased until the names come
    metrics = SttMetrics()
    metrics.watch_pool("decode", pool)
    engine = WhisperEngine(settings, resolved, pool, names=names, metrics=metrics)
    small = _partial_model(settings)
    engines = Engines(
        engine, WhisperEngine(settings, small, pool, role="partial", metrics=metrics) if small else None
    )
    turn = TurnService.from_settings(settings)
    info = partial(build_info, settings, engine, names, turn)
    # Load in the background: the server answers describe while the model loads.
    load_task = asyncio.create_task(_load(engine, metrics))
    partial_load = asyncio.create_task(_load(engines.partial, metrics)) if engines.partial else None
    turn_load = asyncio.create_task(turn.load())
    serve_task = asyncio.create_task(
        serve(
            settings.server,
            partial(
                SttHandler,
                metrics=metrics,
                settings=settings,
                engines=engines,
                audio=audio,
                info=info,
                turn=turn,
            ),
            service_name="wyoming-stt",
            metrics=metrics,
            health=partial(_health, engine, settings.model),
        )
    )
    try:
        await asyncio.wait({load_task, serve_task}, return_when=asyncio.FIRST_COMPLETED)
        if not serve_task.done() and engine.error:
            # A service that can never transcribe must not look available: exit instead.
            where = ", ".join(str(d) for d in settings.data_dirs)
            raise StartupError(
                f"{engine.error}. Nothing was left half-written. Check that the data dir ({where}) is "
                "writable and has room for the model, or pass another --data-dir."
            )
        await serve_task
    finally:
        load_task.cancel()
        turn_load.cancel()
        if partial_load is not None:
            partial_load.cancel()
        if not serve_task.done():
            serve_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serve_task
        if names is not None:
            await names.close()
        pool.shutdown()
        audio.pool.shutdown()
        turn.close()


def run(argv: list[str] | None = None) -> None:
    settings = settings_from_args(build_parser().parse(argv))
    run_service(lambda: main(settings), name="stt", debug=settings.debug)


if __name__ == "__main__":
    run()
