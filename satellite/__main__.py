"""`python -m satellite`: the room satellite, standalone (no --uri) or for Home Assistant (--uri)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from wyoming_core import __version__
from wyoming_core.admission import Admission, AdmissionSettings, IPNetwork, parse_allow
from wyoming_core.cli import http_address
from wyoming_core.http import Health, Monitor, monitor_app
from wyoming_core.logs import setup_logging
from wyoming_core.metrics import ServiceMetrics
from wyoming_core.server import HttpAddress, ListenError, open_monitor, serve

from .audio_in import list_devices, open_mic
from .audio_out import Player, open_sink
from .backend import Backend
from .core import Satellite
from .ha import HaBackend
from .listen import Listener
from .services import Services
from .settings import SatelliteSettings, build_parser, settings_from_args
from .soundcard import EXIT_NO_AUDIO_DEVICE, NoAudioDevice
from .sounds import load_sounds
from .turn import StandaloneBackend
from .vad import SpeechProbability
from .wake import RemoteWake, make_detector

if TYPE_CHECKING:
    from .web import StatusPage

_LOGGER = logging.getLogger("satellite")


async def run_satellite(
    settings: SatelliteSettings,
    metrics: ServiceMetrics | None = None,
    started: asyncio.Event | None = None,
    page: StatusPage | None = None,
) -> None:
    # Model and file loading happen in threads: nothing blocks the loop, even at start-up.
    detector = await asyncio.to_thread(make_detector, settings.wake)
    listener = Listener(detector, await asyncio.to_thread(SpeechProbability))
    mic = open_mic(settings.audio)
    player = Player(
        open_sink(settings.audio),
        lead=settings.audio.playback_lead,
        max_queued_seconds=settings.audio.max_playback_seconds,
    )
    sounds = await asyncio.to_thread(load_sounds, settings.sounds, settings.audio.snd_format)
    backend: Backend
    if settings.ha_mode:
        backend = HaBackend(settings, detector.models)
    else:
        backend = StandaloneBackend(settings.turn, Services(settings.turn), settings.name)
    sat = Satellite(settings, mic, player, listener, sounds, backend)
    if page is not None:
        page.attach(sat)

    await mic.open()
    await player.start()
    if isinstance(detector, RemoteWake):
        detector.start()
    await backend.start()
    # Signal handlers before "ready": a stop right after start-up still shuts down cleanly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    words = ", ".join(f"{m.id} ({m.phrase!r}, {m.engine})" for m in detector.models)
    _LOGGER.info("Satellite %r is ready; wake words: %s", settings.name, words)
    if started is not None:
        started.set()

    tasks: list[asyncio.Task[None]] = [asyncio.create_task(sat.run(), name="mic-loop")]
    if isinstance(backend, HaBackend):
        assert settings.server is not None
        # --http is served beside the satellite (_with_http), in both modes: not by serve().
        server = replace(settings.server, http=None)
        tasks.append(
            asyncio.create_task(serve(server, backend.factory, service_name="satellite", metrics=metrics))
        )
    else:
        tasks.append(asyncio.create_task(_until(stop), name="signals"))
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await backend.stop()
        if isinstance(detector, RemoteWake):
            await detector.stop()
        await player.close()
        await mic.close()
        listener.close()
        if listener.audio_seconds > 0 and detector.blocking:
            _LOGGER.info(
                "Wake word CPU: %.2f %% of a core over %.0f s of audio",
                100 * listener.wake_cpu_seconds / listener.audio_seconds,
                listener.audio_seconds,
            )
        _LOGGER.info("Satellite stopped")


async def _with_http(
    settings: SatelliteSettings, http: HttpAddress, token: str | None, allow: tuple[IPNetwork, ...]
) -> None:
    """--http: the status page (/ and /ws, satellite/web.py), /metrics (the Wyoming server's in
    HA mode; no per-stage metrics yet) and /healthz."""
    from .web import StatusPage  # only with --http (aiohttp takes a moment to import)

    metrics = ServiceMetrics("satellite", __version__)
    started = asyncio.Event()

    def health() -> Health:
        ready = started.is_set()
        return Health(ready, __version__, reason=None if ready else "starting")

    if settings.server is not None:
        services = {"Home Assistant": [settings.server.uri]}
    else:
        turn = settings.turn
        services = {"speech-to-text": list(turn.stt_uris), "text-to-speech": list(turn.tts_uris)}
        services["conversation"] = list(turn.handle_uris)
    page = StatusPage(http.host, token, services)
    # --allow applies to the page as to the Wyoming server (HA mode), in both modes.
    app = monitor_app(metrics, health, Admission(AdmissionSettings(allow=allow)).allowed)
    page.add_routes(app)
    monitor = Monitor(app, http.host, http.port)
    await open_monitor(monitor, "the status page")
    _LOGGER.info("Satellite status page on %s/ (also /metrics and /healthz)", monitor.url)
    try:
        await run_satellite(settings, metrics, started, page)
    finally:
        await monitor.stop()


async def _until(stop: asyncio.Event) -> None:
    await stop.wait()
    _LOGGER.info("Satellite is shutting down")


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse(argv)
    if args.list_devices:
        print(list_devices())
        return
    settings = settings_from_args(args)
    http = http_address(args.http)
    try:
        allow = parse_allow(args.allow or [])
    except ValueError as err:
        raise SystemExit(f"--allow: {err}") from None
    setup_logging(settings.debug, "satellite")
    try:
        if http is None:
            asyncio.run(run_satellite(settings))
        else:
            asyncio.run(_with_http(settings, http, args.http_token, allow))
    except NoAudioDevice as err:
        _LOGGER.error("%s", err)
        sys.exit(EXIT_NO_AUDIO_DEVICE)
    except ListenError as err:
        _LOGGER.error("%s", err)
        sys.exit(err.exit_code)


def run() -> None:
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    run()
